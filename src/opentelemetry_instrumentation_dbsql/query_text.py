"""SQL sanitization and query summaries for the OpenTelemetry database conventions.

``analyze`` turns statement text into ``db.query.text`` (every literal replaced by ``?``),
``db.query.summary``, ``db.operation.name`` and a single ``db.collection.name`` candidate. It
uses one hand-written pass over the characters (the tokenizer, which also builds the sanitized
text) and one pass over the resulting tokens (the summary). It never raises and caches results.

Sanitization (Databricks SQL lexical rules):

* single-quoted and double-quoted strings are literals (Databricks treats ``"..."`` as a string,
  not an identifier) with ``\\`` escapes and doubled quotes; raw strings ``r'...'`` and binary
  ``X'...'`` literals become one ``?`` including the prefix; an unterminated string swallows the
  rest of the text;
* numbers: integers, decimals, exponents, hex ``0x..`` and Spark suffixes (``10L``, ``1.5D``,
  ``2BD``...); a sign directly before a number joins it unless it follows a word, a parameter
  or a closing bracket, so ``12, -12`` and ``99+100`` become ``?, ?`` and ``??`` (the official
  vectors) while ``a-1`` and ``SELECT -1`` keep their sign (``a-?``, ``SELECT -?``); a word
  starting with digits (``2024_sales``) is an identifier, as in Spark's lexer;
* ``TRUE``/``FALSE`` are literals (the conventions list boolean literals); ``NULL`` is kept, it
  carries no data and is part of ``IS NULL`` / ``NOT NULL``;
* typed literals keep their keyword: ``DATE '2024-01-01'`` -> ``DATE ?``,
  ``INTERVAL '1' DAY`` -> ``INTERVAL ? DAY``;
* ``IN (1, 2, 3)`` collapses to ``IN (?)`` when the list holds only literals (allowed by the
  conventions; it keeps the text's cardinality low);
* comments (``--`` and nested ``/* */``, hints included) are removed, the surrounding
  whitespace is kept, the result is stripped;
* backtick identifiers and parameter markers (``?``, ``:name``) are kept as written; an
  unterminated backtick is read as punctuation so it cannot hide a literal, and a backtick
  "identifier" that cannot be a name (longer than 128 characters, or holding a quote, a
  semicolon or a line break) is treated as a literal;
* in a configuration ``SET key = value`` the whole value is one ``?`` (it is raw text, not an
  expression; ``SET VAR`` assignments are sanitized as expressions).

Summary: operations and targets in order of appearance, as written (no case normalization),
joined by single spaces and cut to 255 characters between items:

* ``SELECT`` anywhere, with the tables after ``FROM``/``JOIN``/commas of its ``FROM`` list;
  aliases, derived tables, table-valued functions (``range(10)``, ``read_files(...)``) and
  string paths are not targets; ``FROM`` inside a function call (``EXTRACT(x FROM y)``) is not a
  table list; CTE names are query-local aliases and are left out, the CTE bodies are not;
* the statement verb with the keywords that name the command and its object type, dropping
  prepositions and ``IF [NOT] EXISTS``: ``INSERT t`` (``INTO``/``TABLE`` dropped like the
  vectors' ``INSERT X``, ``OVERWRITE`` kept: it is a different operation), ``DELETE t``,
  ``UPDATE t``, ``MERGE t s`` (target then ``USING`` source; the ``WHEN ... THEN`` actions are
  part of the merge), ``COPY INTO t`` (``COPY INTO`` is the command's name; its source path is a
  literal), ``CREATE OR REPLACE TABLE t``, ``DROP TABLE t``, ``ALTER TABLE t``,
  ``USE CATALOG main``, ``SHOW TABLES s``, ``DESCRIBE TABLE t``, ``CACHE TABLE t``,
  ``REFRESH TABLE t``, ``OPTIMIZE t``, ``VACUUM t``, ``VALUES``, ``SET`` (the key is not a
  target), ``EXPLAIN`` followed by the explained statement; ``GRANT``/``REVOKE`` keep only the
  verb (the rest names privileges and principals); unknown verbs give no operation, so free
  text never becomes a summary;
* qualified and quoted names are kept whole as written, backticks included:
  ``main.default.orders``, `` `my-cat`.`sch`.`t` ``;
* several statements (``SELECT 1; SELECT 2``) give their items in order: ``SELECT SELECT``;
* a JDBC-style escape ``{call proc(?)}`` gives ``call proc``, as in the conventions' example.

``operation_name`` is the verb (with its command keywords) of the first statement, so a
``WITH ... INSERT`` is an ``INSERT``; ``target`` is the only distinct target when there is
exactly one and it names a table or view (``USE CATALOG main`` and ``SHOW TABLES IN s`` name
namespaces, not collections).

Very long text is examined up to ``max(max_length, 64 KiB)`` characters (the summary then
covers that prefix). Results are cached in two LRU tiers: 1024 texts up to 4 KiB and 32 texts
up to 64 KiB; longer texts are analyzed on every call.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = [
    "SUMMARY_MAX_LENGTH",
    "QueryInfo",
    "analyze",
    "cache_clear",
    "cache_info",
    "sanitize",
    "summarize",
]


@dataclass(frozen=True, slots=True)
class QueryInfo:
    """What ``analyze`` found in one statement text."""

    text: str | None
    """``db.query.text``: sanitized unless asked not to, truncated to ``max_length``."""
    summary: str | None
    """``db.query.summary``: operations and targets in order, at most 255 characters."""
    operation_name: str | None
    """``db.operation.name``: the first statement's operation."""
    target: str | None
    """The single table or view the text names, if exactly one."""


_EMPTY: Final = QueryInfo(None, None, None, None)
SUMMARY_MAX_LENGTH: Final = 255
_SCAN_LIMIT: Final = 64 * 1024
_SMALL_MAX_CHARS: Final = 4 * 1024
_LARGE_MAX_CHARS: Final = 64 * 1024

# Token kinds.
_WORD: Final = 1
_QIDENT: Final = 2
_LIT: Final = 3
_PARAM: Final = 4
_PUNCT: Final = 5

_Token = tuple[int, str]

_DIGITS: Final = frozenset("0123456789")
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_LETTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_WORD_CHARS: Final = _LETTERS | _DIGITS
_SPACE: Final = frozenset(" \t\n\r\f\v")
# Punctuation that never starts anything longer than itself.
_PLAIN_PUNCT: Final = frozenset(",()*<>|&%^~!{}[]@#$\\")
_NUMBER_SUFFIX: Final = frozenset("lLsSyYdDfF")
_BOOLEANS: Final = frozenset({"TRUE", "FALSE"})
# An operand before a sign makes the sign a binary operator.
_OPERAND_KINDS: Final = frozenset({_WORD, _QIDENT, _PARAM})
_CLOSERS: Final = frozenset({")", "]"})


def _is_word_char(c: str) -> bool:
    return c in _WORD_CHARS or (c > "\x7f" and c.isalnum())


def _word_end(sql: str, j: int) -> int:
    n = len(sql)
    while j < n and _is_word_char(sql[j]):
        j += 1
    return j


_IMPLAUSIBLE_IN_NAME = frozenset("'\";\n\r")
_MAX_NAME_LENGTH = 128


def _implausible_identifier(sql: str, start: int, end: int) -> bool:
    """Whether the backtick-quoted text ``sql[start:end]`` is no plausible object name."""
    if end - start > _MAX_NAME_LENGTH:
        return True
    return any(ch in _IMPLAUSIBLE_IN_NAME for ch in sql[start:end])


def _string_end(sql: str, start: int, quote: str, escapes: bool) -> int:
    """Index after the string literal opening at ``start`` (the text's end if unterminated).

    A doubled quote continues an escaping literal: in Spark ``'a''b'`` is two adjacent
    literals lexed by the same rules, so one span covers both. A raw literal (no escapes) ends
    at its first closing quote; what follows is lexed on its own.
    """
    n = len(sql)
    if not escapes:
        k = sql.find(quote, start + 1)
        return n if k < 0 else k + 1
    # ``k`` is the first quote at or after ``j``: it is searched for again only once ``j`` has
    # passed it, so each search starts where the last one of its kind ended (one read of the
    # text, however many escapes come before a quote).
    j = start + 1
    k = sql.find(quote, j)
    while k >= 0:
        b = sql.find("\\", j, k)
        if b >= 0:
            j = b + 2
        elif k + 1 < n and sql[k + 1] == quote:
            j = k + 2
        else:
            return k + 1
        if k < j:
            k = sql.find(quote, j)
    return n


def _block_comment_end(sql: str, start: int) -> int:
    """Index after the (nested) block comment opening at ``start`` (the text's end if unclosed).

    ``close`` is the first ``*/`` at or after ``j``, searched for again only once ``j`` has
    passed it: each search starts where the last one of its kind ended, so many openers before
    a closer cost one read of the text, not one per opener.
    """
    depth = 1
    j = start + 2
    close = sql.find("*/", j)
    while close >= 0:
        opener = sql.find("/*", j, close)
        if opener >= 0:
            depth += 1
            j = opener + 2
        else:
            depth -= 1
            j = close + 2
            if not depth:
                return j
        if close < j:  # passed it, or ``/*/`` made its star part of an opener
            close = sql.find("*/", j)
    return len(sql)


def _number_end(sql: str, i: int, n: int) -> int:
    """End of the number literal at ``i``, or -1 when the characters form an identifier."""
    j = i
    if sql[j] == "0" and j + 2 < n and sql[j + 1] in "xX" and sql[j + 2] in _HEX:
        j += 3
        while j < n and sql[j] in _HEX:
            j += 1
        return -1 if j < n and _is_word_char(sql[j]) else j
    while j < n and sql[j] in _DIGITS:
        j += 1
    plain = True
    if j < n and sql[j] == ".":
        plain = False
        j += 1
        while j < n and sql[j] in _DIGITS:
            j += 1
    if j < n and sql[j] in "eE":
        k = j + 1
        if k < n and sql[k] in "+-":
            k += 1
        if k < n and sql[k] in _DIGITS:
            plain = False
            j = k + 1
            while j < n and sql[j] in _DIGITS:
                j += 1
    if j < n:
        c = sql[j]
        if c in "bB" and j + 1 < n and sql[j + 1] in "dD":
            j += 2
        elif c in _NUMBER_SUFFIX:
            j += 1
    if j < n and _is_word_char(sql[j]) and plain:
        return -1
    return j


def _set_value_end(sql: str, start: int) -> int:
    """End of a ``SET key = value`` value: the next ``;`` outside quotes, or the text's end."""
    n = len(sql)
    j = start
    while j < n:
        c = sql[j]
        if c == ";":
            return j
        if c in "'\"`":
            j = _string_end(sql, j, c, c != "`")
        else:
            j += 1
    return n


def _tokenize(sql: str, build: bool) -> tuple[str, list[_Token]]:
    """One pass over ``sql``: the sanitized text (if ``build``) and the significant tokens."""
    n = len(sql)
    out: list[str] = []
    toks: list[_Token] = []
    last = 0  # start of the source not yet copied to ``out``
    i = 0
    prev_kind = 0
    prev_text = ""
    stmt_words = 0
    set_stmt = False
    in_state = 0  # 1: just saw IN; 2: inside an IN list that may collapse
    in_mark = 0
    in_count = 0
    while i < n:
        c = sql[i]
        lit = False
        if c in _LETTERS or (c > "\x7f" and c.isalnum()):
            j = i + 1
            while j < n and sql[j] in _WORD_CHARS:
                j += 1
            if j < n and sql[j] > "\x7f":
                j = _word_end(sql, j)
            if j - i == 1 and j < n and sql[j] in "'\"" and c in "rRxX":
                # r'raw' and X'0AFF': the prefix belongs to the literal.
                j = _string_end(sql, j, sql[j], c in "xX")
                kind = _LIT
                lit = True
                text = "?"
            else:
                text = sql[i:j]
                if j - i > 8:
                    # Common case first: a long word is never a keyword this pass acts on.
                    stmt_words += 1
                    if in_state:
                        in_state = 0
                    toks.append((_WORD, text))
                    prev_kind = _WORD
                    prev_text = text
                    i = j
                    continue
                kind = _WORD
                upper = text.upper()
                if upper in _BOOLEANS and prev_text != "." and (j >= n or sql[j] != "."):
                    kind = _LIT
                    lit = True
                    text = "?"
                elif upper == "IN":
                    in_state = 1
                if stmt_words == 0:
                    set_stmt = upper == "SET"
                elif stmt_words == 1 and upper in ("VAR", "VARIABLE"):
                    set_stmt = False
                stmt_words += 1
        elif c in _SPACE:
            i += 1
            continue
        elif c in _PLAIN_PUNCT:
            j = i + 1
            kind = _PUNCT
            text = c
        elif c in _DIGITS or (
            c == "."
            and i + 1 < n
            and sql[i + 1] in _DIGITS
            and not (i > 0 and (_is_word_char(sql[i - 1]) or sql[i - 1] in "`)]"))
        ):
            # Right after a dot a digit starts a name part (``t.1col``), not a number.
            j = (
                -1
                if c != "." and prev_text == "." and sql[i - 1] == "."
                else _number_end(sql, i, n)
            )
            if j < 0:
                j = _word_end(sql, i + 1)
                kind = _WORD
                text = sql[i:j]
                stmt_words += 1
            else:
                kind = _LIT
                lit = True
                text = "?"
        elif c in "'\"":
            j = _string_end(sql, i, c, True)
            kind = _LIT
            lit = True
            text = "?"
        elif c == "`":
            k = i + 1
            while True:
                k = sql.find("`", k)
                if k < 0 or k + 1 >= n or sql[k + 1] != "`":
                    break
                k += 2
            if k < 0:
                j = i + 1
                kind = _PUNCT
                text = c
            elif _implausible_identifier(sql, i + 1, k):
                # Quoting arbitrary text as a name (pandas probes tables with the whole query
                # as one) would carry literals into text, summary and span name: a literal.
                j = k + 1
                kind = _LIT
                lit = True
                text = "?"
            else:
                j = k + 1
                kind = _QIDENT
                text = sql[i:j]
                stmt_words += 1
        elif c == "-" and i + 1 < n and sql[i + 1] == "-":
            j = sql.find("\n", i)
            if j < 0:
                j = n
            if build:
                out.append(sql[last:i])
                last = j
            i = j
            continue
        elif c == "/" and i + 1 < n and sql[i + 1] == "*":
            j = _block_comment_end(sql, i)
            if build:
                out.append(sql[last:i])
                last = j
            i = j
            continue
        else:
            j = i + 1
            kind = _PUNCT
            text = c
            if (
                c in "+-"
                and j < n
                and prev_kind not in _OPERAND_KINDS
                and prev_text not in _CLOSERS
            ):
                d = sql[j]
                if d in _DIGITS or (d == "." and j + 1 < n and sql[j + 1] in _DIGITS):
                    e = _number_end(sql, j, n)
                    if e > 0:
                        j = e
                        kind = _LIT
                        lit = True
                        text = "?"
            elif c == "?":
                kind = _PARAM
            elif c == ":" and j < n and sql[j] in _LETTERS and (i == 0 or sql[i - 1] != ":"):
                j = _word_end(sql, j)
                kind = _PARAM
                text = sql[i:j]
            elif c == ";":
                stmt_words = 0
                set_stmt = False
            elif c == "=" and set_stmt:
                set_stmt = False
                e = _set_value_end(sql, j)
                value = sql[j:e]
                stripped = value.strip()
                if stripped:
                    vs = j + value.index(stripped[0])
                    ve = vs + len(stripped)
                    if build:
                        out.append(sql[last:vs])
                        out.append("?")
                        last = ve
                    toks.append((_PUNCT, "="))
                    toks.append((_LIT, "?"))
                    prev_kind = _LIT
                    prev_text = "?"
                    i = ve
                    continue
        if lit and build:
            out.append(sql[last:i])
            out.append("?")
            last = j
        if in_state:
            if in_state == 1:
                if text == "(" and kind == _PUNCT and build:
                    out.append(sql[last:j])
                    last = j
                    in_mark = len(out)
                    in_count = 0
                    in_state = 2
                elif kind != _WORD or text.upper() != "IN":
                    in_state = 0
            elif kind == _LIT:
                in_count += 1
            elif kind == _PUNCT and text == ")" and in_count:
                del out[in_mark:]
                out.append("?)")
                last = j
                in_state = 0
            elif kind != _PUNCT or text != ",":
                in_state = 0
        toks.append((kind, text))
        prev_kind = kind
        prev_text = text
        i = j
    if not build:
        return "", toks
    out.append(sql[last:])
    return "".join(out), toks


# --- summary ---------------------------------------------------------------------------------

_NO_TARGET: Final = 0
_COLLECTION: Final = 1
_OTHER: Final = 2

_RESTART: Final = 1  # the explained statement follows (EXPLAIN)
_MERGE: Final = 2  # a USING source follows the target
_SKIP: Final = 3  # the rest names privileges and principals (GRANT)


class _Verb(NamedTuple):
    keep: frozenset[str]  # command keywords that go into the operation name
    drop: frozenset[str]  # keywords skipped without a trace
    target: int  # default target kind
    collection: frozenset[str] = frozenset()  # keywords that make the target a table/view
    other: frozenset[str] = frozenset()  # keywords that make it something else
    flag: int = 0


def _fs(words: str) -> frozenset[str]:
    return frozenset(words.split())


_NO_WORDS: Final = frozenset[str]()
_IF_EXISTS: Final = _fs("IF NOT EXISTS")
_PREPOSITIONS: Final = _fs("IN FROM ON")
_NON_COLLECTIONS: Final = _fs(
    "SCHEMA SCHEMAS DATABASE DATABASES CATALOG CATALOGS NAMESPACE NAMESPACES FUNCTION FUNCTIONS "
    "VOLUME VOLUMES CONNECTION CONNECTIONS CREDENTIAL CREDENTIALS LOCATION LOCATIONS SHARE "
    "SHARES RECIPIENT RECIPIENTS PROVIDER PROVIDERS PROCEDURE PROCEDURES TABLES VIEWS QUERY "
    "DIRECTORY SERVICE INDEX MODEL SERVER VARIABLE VAR"
)
# Targets of these would be principals: never put them in a summary.
_PRINCIPALS: Final = _fs("USER USERS GROUP GROUPS ROLE ROLES PRINCIPAL")
_OBJECTS: Final = _NON_COLLECTIONS | _PRINCIPALS | _fs("TABLE VIEW")
_TABLE_VIEW: Final = _fs("TABLE VIEW")
_DDL: Final = _Verb(
    _fs(
        "OR REPLACE TEMPORARY TEMP GLOBAL EXTERNAL MATERIALIZED STREAMING LIVE MANAGED FOREIGN "
        "STORAGE BLOOMFILTER"
    )
    | _OBJECTS,
    _IF_EXISTS,
    _OTHER,
    _TABLE_VIEW,
)
_TABLE_ONLY: Final = _Verb(_fs("TABLE"), _NO_WORDS, _COLLECTION)
_BARE: Final = _Verb(_NO_WORDS, _NO_WORDS, _NO_TARGET)

_VERBS: Final[dict[str, _Verb]] = {
    "INSERT": _Verb(_fs("OVERWRITE LOCAL DIRECTORY"), _fs("INTO TABLE"), _COLLECTION),
    "UPDATE": _Verb(_NO_WORDS, _NO_WORDS, _COLLECTION),
    "DELETE": _Verb(_NO_WORDS, _fs("FROM"), _COLLECTION),
    "MERGE": _Verb(_NO_WORDS, _fs("INTO WITH SCHEMA EVOLUTION"), _COLLECTION, flag=_MERGE),
    "COPY": _Verb(_fs("INTO"), _NO_WORDS, _COLLECTION),
    "TABLE": _Verb(_NO_WORDS, _NO_WORDS, _COLLECTION),
    "VALUES": _BARE,
    "CREATE": _DDL,
    "ALTER": _DDL,
    "DROP": _DDL,
    "UNDROP": _DDL,
    "TRUNCATE": _TABLE_ONLY,
    "REPLACE": _DDL,
    "COMMENT": _Verb(_DDL.keep | _fs("ON"), _NO_WORDS, _OTHER, _TABLE_VIEW),
    "USE": _Verb(_fs("CATALOG SCHEMA DATABASE NAMESPACE"), _NO_WORDS, _OTHER),
    "SHOW": _Verb(
        _fs(
            "TABLES TABLE EXTENDED VIEWS SCHEMAS DATABASES CATALOGS FUNCTIONS USER SYSTEM ALL "
            "COLUMNS PARTITIONS TBLPROPERTIES CREATE GRANTS GRANT VOLUMES SHARES RECIPIENTS "
            "PROVIDERS GROUPS USERS LOCATIONS CONNECTIONS CREDENTIALS STORAGE EXTERNAL CURRENT "
            "NAMESPACE VIEW MATERIALIZED PROCEDURES"
        ),
        _PREPOSITIONS | _fs("AS"),
        _OTHER,
        _fs("COLUMNS PARTITIONS TBLPROPERTIES CREATE"),
        _PRINCIPALS | _fs("GRANTS GRANT"),
    ),
    "DESCRIBE": _Verb(
        _fs("TABLE EXTENDED FORMATTED HISTORY DETAIL EXTERNAL STORAGE") | _OBJECTS,
        _NO_WORDS,
        _COLLECTION,
        _TABLE_VIEW,
        _NON_COLLECTIONS | _PRINCIPALS,
    ),
    "OPTIMIZE": _TABLE_ONLY,
    "VACUUM": _TABLE_ONLY,
    "REORG": _TABLE_ONLY,
    "RESTORE": _TABLE_ONLY,
    "ANALYZE": _Verb(_fs("TABLE TABLES"), _PREPOSITIONS, _COLLECTION, other=_fs("TABLES")),
    "MSCK": _Verb(_fs("REPAIR TABLE"), _NO_WORDS, _COLLECTION),
    "REPAIR": _TABLE_ONLY,
    "FSCK": _Verb(_fs("REPAIR TABLE"), _NO_WORDS, _COLLECTION),
    "CONVERT": _Verb(_fs("TO DELTA"), _NO_WORDS, _COLLECTION),
    "SYNC": _Verb(_fs("TABLE SCHEMA"), _NO_WORDS, _COLLECTION, other=_fs("SCHEMA")),
    "CACHE": _Verb(_fs("LAZY TABLE"), _NO_WORDS, _COLLECTION),
    "UNCACHE": _Verb(_fs("TABLE"), _IF_EXISTS, _COLLECTION),
    "REFRESH": _Verb(
        _fs("TABLE FUNCTION MATERIALIZED VIEW STREAMING FOREIGN CATALOG SCHEMA"),
        _NO_WORDS,
        _COLLECTION,
        _TABLE_VIEW,
        _NON_COLLECTIONS,
    ),
    "CALL": _Verb(_NO_WORDS, _NO_WORDS, _OTHER),
    "EXECUTE": _Verb(_fs("IMMEDIATE"), _NO_WORDS, _NO_TARGET),
    "EXPLAIN": _Verb(
        _fs("EXTENDED CODEGEN COST FORMATTED LOGICAL"), _NO_WORDS, _NO_TARGET, flag=_RESTART
    ),
    "SET": _BARE,
    "RESET": _BARE,
    "DECLARE": _Verb(_fs("OR REPLACE VARIABLE VAR"), _NO_WORDS, _NO_TARGET),
    "GRANT": _Verb(_NO_WORDS, _NO_WORDS, _NO_TARGET, flag=_SKIP),
    "REVOKE": _Verb(_NO_WORDS, _NO_WORDS, _NO_TARGET, flag=_SKIP),
    "DENY": _Verb(_NO_WORDS, _NO_WORDS, _NO_TARGET, flag=_SKIP),
    "BEGIN": _Verb(_fs("TRANSACTION WORK"), _NO_WORDS, _NO_TARGET),
    "START": _Verb(_fs("TRANSACTION"), _NO_WORDS, _NO_TARGET),
    "COMMIT": _Verb(_fs("TRANSACTION WORK"), _NO_WORDS, _NO_TARGET),
    "ROLLBACK": _Verb(_fs("TRANSACTION WORK"), _NO_WORDS, _NO_TARGET),
    "LIST": _BARE,
    "GET": _BARE,
    "PUT": _BARE,
    "REMOVE": _BARE,
    "ADD": _Verb(_fs("JAR JARS FILE FILES ARCHIVE ARCHIVES"), _NO_WORDS, _NO_TARGET),
    "CLEAR": _Verb(_fs("CACHE"), _NO_WORDS, _NO_TARGET),
}
_VERBS["DESC"] = _VERBS["DESCRIBE"]
_VERBS["EXEC"] = _VERBS["EXECUTE"]

# Words that end a FROM list.
_CLAUSE_END: Final = _fs(
    "WHERE GROUP HAVING ORDER LIMIT OFFSET UNION INTERSECT EXCEPT MINUS WINDOW QUALIFY CLUSTER "
    "DISTRIBUTE SORT SET WHEN VALUES"
)
# Keywords that cannot be a table name where one is expected.
_NOT_NAMES: Final = _CLAUSE_END | _fs(
    "SELECT WITH FROM AS ON USING LIKE IN PARTITION ZORDER RETAIN DRY TO JOIN INNER LEFT RIGHT "
    "FULL CROSS OUTER NATURAL SEMI ANTI THEN ELSE END AND OR NOT BY"
)
# Words before a table name that are not part of it.
_TABLE_PREFIXES: Final = _fs("LATERAL STREAM")
_WITH_WORDS: Final = _fs("AS RECURSIVE MATERIALIZED NOT")
# The words the summary pass acts on outside of any pending state.
_KEYWORDS: Final = _CLAUSE_END | _fs("SELECT FROM JOIN USING WITH LATERAL")

# Scope slots: a query scope has SELECT in it; FROM list open; WITH list open; CTE name next.
_QUERY, _IN_FROM, _WITH_LIST, _CTE_NEXT = range(4)


def _unquote(name: str) -> str:
    if name.startswith("`") and name.endswith("`") and len(name) > 1:
        return name[1:-1].replace("``", "`").lower()
    return name.lower()


def _summarize_tokens(toks: list[_Token]) -> tuple[list[str], str | None, str | None]:
    """The summary items, the operation name and the single table target of ``toks``."""
    items: list[str] = []
    targets: list[str] = []
    collections: set[str] = set()
    non_collection = False
    op_name: str | None = None
    first_op: str | None = None
    ctes: set[str] = set()
    n = len(toks)
    stack: list[list[bool]] = [[True, False, False, False]]
    scope = stack[0]
    stmt_start = True
    stmt_op: str | None = None
    expect = _NO_TARGET  # _COLLECTION/_OTHER: a verb target is next; 3: a FROM-list table is next
    merge_using = False
    skip = False
    prev = ""  # upper-case text of the previous token ("" for literals and parameters)
    i = 0
    while i < n:
        kind, text = toks[i]
        if kind == _PUNCT:
            if text == ";":
                if stmt_op is not None and op_name is None:
                    op_name = stmt_op
                stack = [[True, False, False, False]]
                scope = stack[0]
                stmt_start = True
                stmt_op = None
                expect = _NO_TARGET
                merge_using = skip = False
                ctes.clear()
            elif skip:
                pass
            elif text == "(":
                # ``FROM (a JOIN b)`` continues the table list; ``FROM (SELECT`` is a query.
                in_list = expect == 3
                expect = 3 if in_list else _NO_TARGET
                stmt_start = False
                scope = [in_list, in_list, False, False]
                stack.append(scope)
            elif text == ")":
                expect = _NO_TARGET
                if len(stack) > 1:
                    stack.pop()
                    scope = stack[-1]
            elif text == ",":
                if scope[_WITH_LIST] and not scope[_IN_FROM]:
                    scope[_CTE_NEXT] = True
                elif scope[_IN_FROM]:
                    expect = 3
            elif text != "{":
                expect = _NO_TARGET
            prev = text
            i += 1
            continue
        if skip or kind in (_LIT, _PARAM) or prev == ".":
            if expect and kind in (_LIT, _PARAM):
                expect = _NO_TARGET
            prev = ""
            i += 1
            continue
        upper = text.upper() if kind == _WORD else ""
        if not (expect or stmt_start or scope[_WITH_LIST]) and upper not in _KEYWORDS:
            prev = upper
            i += 1
            continue

        if scope[_WITH_LIST]:
            if scope[_CTE_NEXT]:
                if upper == "RECURSIVE":
                    i += 1
                    continue
                name, i = _read_name(toks, i)
                ctes.add(_unquote(name))
                scope[_CTE_NEXT] = False
                prev = ""
                continue
            if upper not in _WITH_WORDS:
                scope[_WITH_LIST] = False
                if len(stack) == 1:
                    stmt_start = True

        if stmt_start and len(stack) == 1:
            stmt_start = False
            verb = _VERBS.get(upper)
            if verb is not None:
                i = _read_verb(toks, i, verb, items)
                if stmt_op is None:
                    stmt_op = items[-1]
                if first_op is None:
                    first_op = items[-1]
                expect = verb.target
                if expect != _NO_TARGET:
                    for w in items[-1].upper().split():
                        if w in verb.collection:
                            expect = _COLLECTION
                        elif w in verb.other:
                            expect = _OTHER
                        if w in _PRINCIPALS:
                            expect = _NO_TARGET
                            break
                if verb.flag == _MERGE:
                    merge_using = True
                elif verb.flag == _RESTART:
                    stmt_start = True
                elif verb.flag == _SKIP:
                    skip = True
                prev = ""
                continue
            if upper == "SELECT" and stmt_op is None:
                stmt_op = text

        if expect:
            if upper in _NOT_NAMES:
                expect = _NO_TARGET
            elif (
                expect == 3
                and upper in _TABLE_PREFIXES
                and i + 1 < n
                and (toks[i + 1][0] in (_WORD, _QIDENT) or toks[i + 1][1] == "(")
            ):
                i += 1
                continue
            if expect:
                name, i = _read_name(toks, i)
                is_function = expect == 3 and i < n and toks[i][1] == "("
                if not is_function and _unquote(name) not in ctes:
                    items.append(name)
                    targets.append(name)
                    if expect == _OTHER:
                        non_collection = True
                    else:
                        collections.add(name)
                expect = _NO_TARGET
                prev = ""
                continue

        if upper == "SELECT":
            items.append(text)
            if first_op is None:
                first_op = text
            scope[_QUERY] = True
            scope[_IN_FROM] = False
        elif upper == "FROM":
            if scope[_QUERY] and prev != "DISTINCT":
                scope[_IN_FROM] = True
                expect = 3
        elif upper == "JOIN":
            if scope[_QUERY]:
                scope[_IN_FROM] = True
                expect = 3
        elif upper == "USING":
            if merge_using and len(stack) == 1:
                merge_using = False
                expect = 3
        elif upper == "WITH":
            if _is_cte_list(toks, i):
                scope[_WITH_LIST] = scope[_CTE_NEXT] = True
        elif upper in _CLAUSE_END or (upper == "LATERAL" and scope[_IN_FROM]):
            scope[_IN_FROM] = False
        prev = upper
        i += 1

    if stmt_op is not None and op_name is None:
        op_name = stmt_op
    if op_name is None:
        op_name = first_op
    target = None
    if len(collections) == 1 and not non_collection and len(set(targets)) == 1:
        target = targets[0]
    return items, op_name, target


def _is_cte_list(toks: list[_Token], i: int) -> bool:
    """Whether the WITH at ``i`` opens common table expressions (``WITH name [(a, b)] AS``)."""
    n = len(toks)
    j = i + 1
    if j < n and toks[j][1].upper() == "RECURSIVE":
        j += 1
    if j >= n or toks[j][0] not in (_WORD, _QIDENT):
        return False
    j += 1
    if j < n and toks[j] == (_PUNCT, "("):
        # A column list holds names and commas only. Stopping at anything else keeps the
        # look-aheads of different WITHs apart: nested ones do not each rescan the rest.
        j += 1
        while j < n and (toks[j][0] in (_WORD, _QIDENT) or toks[j] == (_PUNCT, ",")):
            j += 1
        if j >= n or toks[j] != (_PUNCT, ")"):
            return False
        j += 1
    return j < n and toks[j][0] == _WORD and toks[j][1].upper() == "AS"


def _read_name(toks: list[_Token], i: int) -> tuple[str, int]:
    """A possibly qualified name starting at ``i`` and the index after it."""
    parts = [toks[i][1]]
    i += 1
    n = len(toks)
    while i + 1 < n and toks[i] == (_PUNCT, ".") and toks[i + 1][0] in (_WORD, _QIDENT):
        parts.append(toks[i + 1][1])
        i += 2
    return ".".join(parts), i


def _read_verb(toks: list[_Token], i: int, verb: _Verb, items: list[str]) -> int:
    """Append the operation (verb and command keywords) starting at ``i``; index after it."""
    words = [toks[i][1]]
    n = len(toks)
    j = i + 1
    first = True
    while j < n:
        kind, text = toks[j]
        if kind != _WORD:
            break
        upper = text.upper()
        if upper not in verb.keep and upper not in verb.drop:
            break
        following = toks[j + 1] if j + 1 < n else (_PUNCT, ";")
        if following == (_PUNCT, "."):
            break  # the first part of a qualified name (``CREATE TABLE schema.t``)
        # A keyword followed by no name may itself be the name (``DROP TABLE location``).
        if not first and following[0] not in (_WORD, _QIDENT):
            break
        if upper in verb.keep:
            words.append(text)
        first = False
        j += 1
    items.append(" ".join(words))
    return j


def _join_summary(items: list[str]) -> str | None:
    size = -1
    count = 0
    for item in items:
        if size + 1 + len(item) > SUMMARY_MAX_LENGTH:
            break
        size += 1 + len(item)
        count += 1
    return " ".join(items[:count]) if count else None


def _analyze(sql: str, sanitize: bool, max_length: int) -> QueryInfo:
    limit = max(_SCAN_LIMIT, max_length)
    cut = len(sql) > limit
    source = sql[:limit] if cut else sql
    sanitized, toks = _tokenize(source, sanitize)
    if cut and toks:
        # The last token may be a fragment of a longer one.
        toks.pop()
    items, op_name, target = _summarize_tokens(toks)
    text: str | None = sanitized.strip() if sanitize else sql
    if text is not None and (max_length <= 0 or not text.strip()):
        text = None
    elif text is not None and len(text) > max_length:
        text = text[:max_length]
    return QueryInfo(text, _join_summary(items), op_name, target)


# Two tiers keep the memory held by cached keys bounded (about 4 MiB + 2 MiB of text) while
# still caching the long generated statements that dashboards repeat.
_analyze_small = functools.lru_cache(maxsize=1024)(_analyze)
_analyze_large = functools.lru_cache(maxsize=32)(_analyze)


def analyze(sql: str, *, sanitize: bool = True, max_length: int = 2048) -> QueryInfo:
    """Sanitized text, summary, operation name and single target of ``sql``.

    ``sanitize=False`` is for parameterized text, which the conventions keep as written.
    ``text`` is ``None`` for empty, blank or comment-only text and when ``max_length`` is not
    positive. Results are cached; any input, however malformed, gives a ``QueryInfo`` rather
    than an exception (all fields ``None`` when nothing can be said).
    """
    try:
        if type(sql) is not str:
            if not isinstance(sql, str):
                return _EMPTY
            sql = str.__str__(sql)
        flag = bool(sanitize)
        length = operator.index(max_length)
        size = len(sql)
        if size <= _SMALL_MAX_CHARS:
            return _analyze_small(sql, flag, length)
        if size <= _LARGE_MAX_CHARS:
            return _analyze_large(sql, flag, length)
        return _analyze(sql, flag, length)
    except Exception:
        return _EMPTY


def sanitize(sql: str) -> str:
    """``sql`` with every literal replaced by ``?`` and comments removed, not truncated."""
    if not isinstance(sql, str):
        return ""
    return analyze(sql, max_length=max(len(sql), 1)).text or ""


def summarize(sql: str) -> str | None:
    """The ``db.query.summary`` of ``sql``, or ``None`` if it names no known operation."""
    return analyze(sql).summary


def cache_info() -> functools._CacheInfo:
    """Hits, misses, capacity and size of the ``analyze`` caches, summed over both tiers."""
    small = _analyze_small.cache_info()
    large = _analyze_large.cache_info()
    return functools._CacheInfo(
        small.hits + large.hits,
        small.misses + large.misses,
        (small.maxsize or 0) + (large.maxsize or 0),
        small.currsize + large.currsize,
    )


def cache_clear() -> None:
    """Empty the ``analyze`` caches."""
    _analyze_small.cache_clear()
    _analyze_large.cache_clear()
