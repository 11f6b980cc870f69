"""SQL sanitization and query summaries for the OpenTelemetry database conventions.

``analyze`` turns statement text into ``db.query.text`` (every literal replaced by ``?``),
``db.query.summary``, ``db.operation.name`` and a single ``db.collection.name`` candidate. One
regular expression cuts the text into pieces (``findall``, in C), one pass over the pieces
builds the sanitized text and the tokens, one pass over the tokens the summary; the keyword and
verb rules of the summary are tables. It never raises and caches results.

Sanitization (Databricks SQL lexical rules):

* single-quoted and double-quoted strings are literals (Databricks treats ``"..."`` as a string,
  not an identifier) with ``\\`` escapes and doubled quotes; raw strings ``r'...'`` and binary
  ``X'...'`` literals become one ``?`` including the prefix; an unterminated string swallows the
  rest of the text;
* numbers: integers, decimals, exponents, hex ``0x..`` and Spark suffixes (``10L``, ``1.5D``,
  ``2BD``...); a run of dotted numbers (``1.1.1``) is one literal; a sign directly before a
  number joins it unless it follows a word, a parameter or a closing bracket, so ``12, -12`` and
  ``99+100`` become ``?, ?`` and ``??`` (the official vectors) while ``a-1`` and ``SELECT -1``
  keep their sign (``a-?``, ``SELECT -?``); a word starting with digits (``2024_sales``) is an
  identifier, as in Spark's lexer;
* ``TRUE``/``FALSE`` are literals (the conventions list boolean literals); ``NULL`` is kept, it
  carries no data and is part of ``IS NULL`` / ``NOT NULL``;
* typed literals keep their keyword: ``DATE '2024-01-01'`` -> ``DATE ?``,
  ``INTERVAL '1' DAY`` -> ``INTERVAL ? DAY``;
* ``IN (1, 2, 3)`` collapses to ``IN (?)`` when the list holds only literals (allowed by the
  conventions; it keeps the text's cardinality low);
* comments (``--`` and nested ``/* */``, hints included) are removed, the surrounding
  whitespace is kept, the result is stripped; a block comment nested more than four levels deep
  runs to the end of the text;
* backtick identifiers and parameter markers (``?``, ``:name``) are kept as written; an
  unterminated backtick is read as punctuation so it cannot hide a literal, and a backtick
  "identifier" that cannot be a name (longer than 128 characters, or holding a quote, a
  semicolon or a line break) is treated as a literal;
* in a configuration ``SET key = value`` the whole value up to the next ``;`` is one ``?`` (it is
  raw text, not an expression; ``SET VAR`` assignments are sanitized as expressions).

Summary: operations and targets in order of appearance, as written (no case normalization),
joined by single spaces and cut to 255 characters between items:

* ``SELECT`` anywhere, with the tables after ``FROM``/``JOIN``/commas of its ``FROM`` list;
  aliases, derived tables, table-valued functions (``range(10)``, ``read_files(...)``) and
  string paths are not targets; ``FROM`` inside a function call (``EXTRACT(x FROM y)``) is not a
  table list; CTE names (``WITH name [(columns)] [AS] (query)``) are query-local aliases and are
  left out, the CTE bodies are not;
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

Very long text is examined up to ``max(max_length, 64 KiB)`` characters, and of those up to
one token or comment per eight characters (8,192 in 64 KiB; ordinary SQL has fewer): the
cost of an analysis follows its tokens, so a denser text (a long list of one-character
tokens) has only its start examined, as a longer one does. The summary then covers that
prefix. Results are cached in two LRU tiers: 1024 texts up to 4 KiB and 32 texts up to 64 KiB;
longer texts are analyzed on every call.
"""

from __future__ import annotations

import functools
import operator
import re
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
# Of the scanned text at most one piece (a token or comment) per this many characters is read:
# the cost of a text follows its pieces, so a denser text (64 KiB of one-character tokens) has
# only its start read rather than costing several times an ordinary text of the same length.
_CHARS_PER_PIECE: Final = 8
_SMALL_MAX_CHARS: Final = 4 * 1024
_LARGE_MAX_CHARS: Final = 64 * 1024

# Token kinds.
_WORD: Final = 1
_QIDENT: Final = 2
_LIT: Final = 3
_PARAM: Final = 4
_PUNCT: Final = 5

_Token = tuple[int, str]
_NAMES: Final = frozenset({_WORD, _QIDENT})
_OPEN: Final = (_PUNCT, "(")
_CLOSE: Final = (_PUNCT, ")")
_COMMA: Final = (_PUNCT, ",")
_DOT: Final = (_PUNCT, ".")
_SEMICOLON: Final = (_PUNCT, ";")

# --- lexer -----------------------------------------------------------------------------------
#
# ``_PIECE`` cuts text into pieces, each a token or comment with the whitespace after it (or,
# first, the whitespace the text starts with): the pieces joined are the text. Its alternatives
# are tried in order: names first (the most common), literals before the names that start like
# them. ``findall`` runs in C; the tokenizer then looks at each piece once, by its first
# character.

_SPACE: Final = " \t\n\r\f\v"  # Databricks' whitespace: any other character is part of a token
_SUFFIX = r"(?:[bB][dD]|[lLsSyYdDfF])"
# Hex; decimals (a run of dotted numbers, 1.1.1, is one); exponents; integers, which followed
# by a word character start a name instead (2024_sales, as in Spark's lexer). A dot after a
# closing bracket is a field access, not a decimal point.
_NUMBER = (
    r"(?:0[xX][0-9a-fA-F]+(?!\w)"
    r"|(?:[0-9]+\.(?:[0-9]+(?:\.[0-9]+)*)?|(?<![)\]])\.[0-9]+(?:\.[0-9]+)*)"
    rf"(?:[eE][+-]?[0-9]+)?{_SUFFIX}?"
    rf"|[0-9]+(?:[eE][+-]?[0-9]+{_SUFFIX}?|{_SUFFIX}?(?!\w)))"
)
# Strings: backslash escapes, doubled quotes; unterminated, they run to the end of the text.
_STRING = (
    r"""'[^'\\]*(?:(?:\\.|'')[^'\\]*)*(?:'|\\?\Z)"""
    r"""|"[^"\\]*(?:(?:\\.|"")[^"\\]*)*(?:"|\\?\Z)"""
)
# A backtick name: at most 128 characters, no quote, semicolon or line break (a query pandas
# quotes as a table name to probe it must not reach the summary). Other backtick text is a
# literal.
_BACKTICK_NAME = r"`(?:[^`'\";\n\r]{0,128}|(?:[^`'\";\n\r]|``){0,128})`(?!`)"
_NAME_PART = rf"(?:(?![rRxX]['\"])\w+|{_BACKTICK_NAME})"
_COMMENT_DEPTH: Final = 4


def _block_comment(depth: int) -> str:
    """A block comment holding comments nested up to ``depth - 1`` levels.

    Inside a comment ``*/`` closes, and ``/*`` opens unless its star also starts a ``*/``
    (``/*/``). A regular expression cannot count, so the nesting it follows is bounded.
    """
    inner = ""
    for level in range(depth):
        others = r"\*(?!/)|/(?!\*(?!/))" + (f"|{inner}" if inner else "")
        opener = r"/\*" if level == depth - 1 else r"/\*(?!/)"
        inner = rf"{opener}[^*/]*(?:(?:{others})[^*/]*)*\*/"
    return inner


_PIECE: Final = re.compile(
    rf"""
    (?: (?![rRxX]['"])(?:[^\W0-9]\w*|{_BACKTICK_NAME})(?:\.{_NAME_PART})*  # name
      | [,()*=<>;|&%^~!{{}}[\]@#$\\?]            # punctuation that starts nothing longer
      | [+-]?{_NUMBER}                           # number (whether a sign joins it: later)
      | [xX]?(?:{_STRING})                       # string, binary literal
      | [rR](?:'[^']*'?|"[^"]*"?)                # raw string (no escapes)
      | [0-9]\w*(?:\.{_NAME_PART})*              # name starting with digits
      | (?<!:):[A-Za-z_]\w*                      # named parameter (not the second colon of ::)
      | --[^\n]*                                 # line comment
      | {_block_comment(_COMMENT_DEPTH)}         # block comment
      | /\*.*                                    # unclosed, or nested too deep
      | `[^`]*(?:``[^`]*)*`(?!`)                 # backtick text that cannot be a name
      | `(?:[^`]|``)*\Z                          # unterminated backtick (see _pieces)
      | [^ \t\n\r\f\v]                           # any other character
    )[ \t\n\r\f\v]*
    | [ \t\n\r\f\v]+                             # whitespace before the first token
    """,
    re.VERBOSE | re.DOTALL,
)
_NUMBER_TEXT: Final = re.compile(_NUMBER)
_NAME_TEXT: Final = re.compile(rf"{_NAME_PART}(?:\.{_NAME_PART})*")
_CLOSED_BACKTICK: Final = re.compile(r"`(?:[^`]|``)*`(?!`)")
_WINDOW: Final = 4096  # characters lexed at a time


def _pieces(sql: str, budget: int) -> list[str]:
    """The pieces of ``sql``, lexed a window at a time until the text or ``budget`` ends.

    The last piece of a window may be cut short; the next window starts again with it. So does
    the piece before it when the last is one character: a piece's match looks at most two
    characters past it (``a.`` then ``b`` is one name). A piece longer than a window is read
    whole. An unterminated backtick is punctuation, and the text after it is lexed on.
    """
    n = len(sql)
    pieces: list[str] = []
    start = 0
    while start < n and len(pieces) < budget:
        end = start + _WINDOW
        if end < n:
            window: list[str] = _PIECE.findall(sql, start, end)
            del window[-1 if len(window[-1]) > 1 else -2 :]
            if not window:  # a piece longer than the window
                piece = _PIECE.match(sql, start)
                window = [piece.group() if piece else sql[start:]]
        else:
            window = _PIECE.findall(sql, start)
        if _unterminated(window[-1]):
            window[-1] = "`"
        pieces += window
        start += sum(map(len, window))
    del pieces[budget:]
    return pieces


def _unterminated(piece: str) -> bool:
    """Whether ``piece`` is a backtick that no other closes (it runs to the end of the text)."""
    return piece[0] == "`" and not _CLOSED_BACKTICK.match(piece)


def _space_after(piece: str) -> str:
    """The whitespace after the token or comment of ``piece``."""
    if piece.startswith("--"):
        end = piece.find("\n")
        return piece[end:] if end >= 0 else ""
    return piece[len(piece.rstrip(_SPACE)) :]


def _is_config_set(toks: list[_Token], start: int) -> bool | None:
    """Whether the statement from ``toks[start]`` on sets a configuration value (``None``
    while it has no word yet).

    Its first word is SET and its second not VAR: ``SET VAR name = expression`` assigns an
    expression, sanitized as such.
    """
    words = [text.upper() for kind, text in toks[start:] if kind in _NAMES]
    if not words:
        return None
    return words[0] == "SET" and words[1:2] not in (["VAR"], ["VARIABLE"])


_NAME_START: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
# The first letters of raw and binary strings (r'', X''), booleans and IN.
_SPECIAL_START: Final = frozenset("rRxXtTfFiI")
# Punctuation that is a token of its own, whatever follows.
_PLAIN: Final = frozenset(",()*=<>;|&%^~!{}[]@#$\\")
_QUOTES: Final = frozenset("'\"")
_NOT_IN_NAMES: Final = frozenset("'\";\n\r")
_BOOLEANS: Final = frozenset({"TRUE", "FALSE"})
# An operand before a sign makes the sign a binary operator.
_OPERANDS: Final = frozenset({_WORD, _QIDENT, _PARAM})
_CLOSERS: Final = frozenset({")", "]"})


def _tokenize(sql: str, build: bool) -> tuple[str, list[_Token]]:
    """The sanitized text (if ``build``) and the significant tokens of ``sql``.

    Reads at most one piece per ``_CHARS_PER_PIECE`` characters of ``max(len(sql), 64 KiB)``:
    of a denser text only the start is read, as of a text longer than the scan limit.
    """
    pieces: list[str] = _PIECE.findall(sql) if len(sql) <= _WINDOW else []
    if not pieces or (pieces[-1][0] == "`" and _unterminated(pieces[-1])):  # long, or to mend
        pieces = _pieces(sql, max(len(sql), _SCAN_LIMIT) // _CHARS_PER_PIECE)
    toks: list[_Token] = []
    append = toks.append
    statement = 0  # index in toks of the statement's first token until its first "=", then -1
    value = -1  # index in pieces of the first piece of a SET value being read, else -1
    in_list = 0  # 1: after IN; 2: after "IN (" and nothing but literals and commas since
    in_open = in_count = 0
    for k, piece in enumerate(pieces):
        first = piece[0]
        if value >= 0:  # the value of SET key = value runs to the next ";"
            if first != ";":
                continue
            _end_value(pieces, value, k, toks, build)
            value = -1
        if first in _NAME_START:
            text = piece.rstrip(_SPACE)
            kind = _WORD
            if first in _SPECIAL_START:
                if first in "rRxX":
                    if text[1:2] in _QUOTES:
                        kind = _LIT  # raw or binary string
                elif len(text) == 2:
                    if text.upper() == "IN":
                        append((_WORD, text))
                        in_list = 1
                        continue
                elif text.upper() in _BOOLEANS:
                    kind = _LIT
                    # Unless a dot joins it to a name: s . true, true.* (s.true is one name).
                    if (toks and toks[-1][1] == ".") or (
                        piece is text and k + 1 < len(pieces) and pieces[k + 1][0] == "."
                    ):
                        kind = _WORD
        elif first in _PLAIN:
            text = first
            kind = _PUNCT
            if first == ";":
                statement = len(toks) + 1
            elif first == "=" and statement >= 0:
                config = _is_config_set(toks, statement)
                if config is None:
                    statement = len(toks) + 1  # no word yet: look again from the next token
                else:
                    value = k + 1 if config else -1
                    statement = -1
        elif "0" <= first <= "9":
            text = piece.rstrip(_SPACE)
            kind = _LIT
            # Integers and decimals first, the rest (2024_sales, 1e5, 10L) by the pattern.
            if not (
                (text.isascii() and text.replace(".", "0", 1).isdigit())
                or _NUMBER_TEXT.fullmatch(text)
            ):
                kind = _WORD  # a name starting with digits
        elif first in _QUOTES:
            kind = _LIT
        elif first == "`":
            text = piece.rstrip(_SPACE)
            if len(text) == 1:
                kind = _PUNCT  # unterminated
            elif (len(text) <= 130 and _NOT_IN_NAMES.isdisjoint(text)) or _NAME_TEXT.fullmatch(
                text
            ):
                kind = _QIDENT
            else:
                kind = _LIT  # no plausible name
        elif first in "+-.":
            second = piece[1:2]
            if not second or second in _SPACE:
                text = first
                kind = _PUNCT
            elif second == "-":
                if build:
                    pieces[k] = _space_after(piece)  # line comment
                continue
            else:
                kind = _LIT
                if first != "." and toks:
                    prev_kind, prev_text = toks[-1]
                    if prev_kind in _OPERANDS or prev_text in _CLOSERS:
                        # A binary operator: the sign stays, the number after it is the literal.
                        append((_PUNCT, first))
                        in_list = 0
                        if build:
                            pieces[k] = first + "?" + _space_after(piece)
                        append((_LIT, "?"))
                        continue
        elif first == "/":
            if piece[1:2] == "*":
                if build:
                    pieces[k] = _space_after(piece)  # block comment
                continue
            text = first
            kind = _PUNCT
        elif first == ":":
            text = piece.rstrip(_SPACE)
            kind = _PARAM if len(text) > 1 else _PUNCT
        elif first == "?":
            text = first
            kind = _PARAM
        elif first in _SPACE:
            continue  # the whitespace the text starts with
        else:  # beyond ASCII, like \w
            text = piece.rstrip(_SPACE)
            kind = _WORD if first.isalnum() else _PUNCT
        if kind == _LIT:
            text = "?"
            if build:
                pieces[k] = "?" + _space_after(piece) if piece[-1] in _SPACE else "?"
        if in_list:
            if in_list == 1:
                if text == "(" and kind == _PUNCT:
                    in_list = 2
                    in_open = k
                    in_count = 0
                else:
                    in_list = 0
            elif kind == _LIT:
                in_count += 1
            elif kind != _PUNCT or text != ",":
                if text == ")" and kind == _PUNCT and in_count and build:
                    pieces[in_open + 1 : k] = [""] * (k - in_open - 1)
                    pieces[in_open] = "("
                    pieces[k] = "?" + piece
                in_list = 0
        append((kind, text))
    if value >= 0:
        _end_value(pieces, value, len(pieces), toks, build)
    return ("".join(pieces) if build else ""), toks


def _end_value(pieces: list[str], start: int, end: int, toks: list[_Token], build: bool) -> None:
    """Make the pieces ``[start, end)`` of a SET value one ``?``."""
    if start < end:
        toks.append((_LIT, "?"))
        if build:
            last = pieces[end - 1]
            pieces[start:end] = [""] * (end - start)
            pieces[end - 1] = "?" + _space_after(last)


# --- summary tables --------------------------------------------------------------------------

# What a name read next is: nothing to keep; the verb's target, a table or view (collection) or
# another object (a schema, a function...); a table of a FROM list.
_NO_TARGET: Final = 0
_COLLECTION: Final = 1
_OTHER: Final = 2
_FROM_TABLE: Final = 3

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
# Words between the CTEs of a WITH list and after it, before the statement's verb.
_WITH_WORDS: Final = _fs("AS RECURSIVE MATERIALIZED NOT")
# Words that open the query of a CTE written without AS: WITH name (SELECT ...).
_QUERY_STARTS: Final = _fs("SELECT WITH VALUES FROM TABLE")

# The keywords the summary acts on in queries: SELECT is an operation, FROM and JOIN open a
# table list, USING names a MERGE source, WITH may open CTEs, LATERAL and the clause ends close
# a table list.
_SELECT, _FROM, _JOIN, _USING, _WITH, _LATERAL, _CLAUSE = range(7)
_KEYWORDS: Final[dict[str, int]] = {
    **dict.fromkeys(_CLAUSE_END, _CLAUSE),
    "SELECT": _SELECT,
    "FROM": _FROM,
    "JOIN": _JOIN,
    "USING": _USING,
    "WITH": _WITH,
    "LATERAL": _LATERAL,
}


# --- summary ---------------------------------------------------------------------------------

# The state of one bracket level, as bits.
_QUERY: Final = 1  # a SELECT (or a FROM list) is open at this level
_IN_FROM: Final = 2  # inside a FROM list: commas and JOINs add tables
_WITH_LIST: Final = 4  # inside a WITH list: its CTE names are query-local aliases
_CTE_NEXT: Final = 8  # a CTE name comes next


def _summarize_tokens(toks: list[_Token]) -> tuple[list[str], str | None, str | None]:
    """The summary items, the operation name and the single table target of ``toks``."""
    items: list[str] = []  # operations and targets in order
    targets: list[tuple[str, bool]] = []  # name, and whether it is no table or view
    operation = first = None  # of the first statement that has one; the first of any
    count = toks.count(_SEMICOLON)
    start = 0
    for number in range(count + 1):
        end = toks.index(_SEMICOLON, start) if number < count else len(toks)
        statement_op, statement_first = _summarize_statement(toks, start, end, items, targets)
        operation = operation or statement_op
        first = first or statement_first
        start = end + 1
    target = None
    if targets and len(set(targets)) == 1 and not targets[0][1]:
        target = targets[0][0]
    return items, operation or first, target


def _summarize_statement(
    toks: list[_Token], i: int, end: int, items: list[str], targets: list[tuple[str, bool]]
) -> tuple[str | None, str | None]:
    """Add the operations and targets of the statement ``toks[i:end]`` to ``items`` and
    ``targets``; its operation and the first operation in it."""
    first: str | None = None
    scope = _QUERY
    outer: list[int] = []  # the scopes of the enclosing brackets
    verb_next = True  # the next word may be the statement's verb
    expect = _NO_TARGET  # what a name read next is
    merge_using = False  # a MERGE whose USING source is still to come
    operation: str | None = None
    ctes: set[str] = set()
    prev = ""  # upper-case text of the previous word or punctuation ("" for literals)
    while i < end:
        kind, text = toks[i]
        if kind == _PUNCT:
            if text == "(":
                # ``FROM (a JOIN b)`` continues the table list; ``FROM (SELECT`` is a query.
                outer.append(scope)
                if expect == _FROM_TABLE:
                    scope = _QUERY | _IN_FROM
                else:
                    scope = 0
                    expect = _NO_TARGET
                verb_next = False
            elif text == ")":
                expect = _NO_TARGET
                if outer:
                    scope = outer.pop()
            elif text == ",":
                if scope & _IN_FROM:
                    expect = _FROM_TABLE
                elif scope & _WITH_LIST:
                    scope |= _CTE_NEXT
            elif text != "{":
                expect = _NO_TARGET
            prev = text
            i += 1
            continue
        if kind > _QIDENT or prev == ".":  # a literal, a parameter, a name after a dot
            if kind > _QIDENT:
                expect = _NO_TARGET
            prev = ""
            i += 1
            continue
        upper = text.upper() if kind == _WORD else ""
        action = _KEYWORDS.get(upper)
        if action is None and not (expect or verb_next or scope & _WITH_LIST):
            prev = upper
            i += 1
            continue
        if scope & _WITH_LIST:
            if scope & _CTE_NEXT:
                if upper == "RECURSIVE":
                    i += 1
                else:
                    name, i = _read_name(toks, i, end)
                    ctes.add(_unquote(name))
                    scope &= ~_CTE_NEXT
                    prev = ""
                continue
            if upper not in _WITH_WORDS:
                scope &= ~_WITH_LIST
                verb_next = not outer
        if verb_next and not outer:
            verb_next = False
            verb = _VERBS.get(upper)
            if verb is not None:
                i, expect = _read_verb(toks, i, end, verb, items)
                operation = operation or items[-1]
                first = first or items[-1]
                if verb.flag == _MERGE:
                    merge_using = True
                elif verb.flag == _RESTART:
                    verb_next = True
                elif verb.flag == _SKIP:
                    break  # the rest names privileges and principals
                prev = ""
                continue
            if action == _SELECT:
                operation = operation or text
        if expect:
            if upper in _NOT_NAMES:
                expect = _NO_TARGET
            elif (
                expect == _FROM_TABLE
                and upper in _TABLE_PREFIXES
                and i + 1 < end
                and (toks[i + 1][0] in _NAMES or toks[i + 1][1] == "(")
            ):
                i += 1  # LATERAL (subquery), STREAM table
                continue
            else:
                i = _read_target(toks, i, end, expect, ctes=ctes, items=items, targets=targets)
                expect = _NO_TARGET
                prev = ""
                continue
        if action == _SELECT:
            items.append(text)
            first = first or text
            scope = (scope | _QUERY) & ~_IN_FROM
        elif action in (_FROM, _JOIN):
            if scope & _QUERY and (action == _JOIN or prev != "DISTINCT"):
                scope |= _IN_FROM
                expect = _FROM_TABLE
        elif action == _USING:
            if merge_using and not outer:
                merge_using = False
                expect = _FROM_TABLE
        elif action == _WITH:
            j = _cte_name_at(toks, i, end)
            if j >= 0:
                name, i = _read_name(toks, j, end)
                ctes.add(_unquote(name))
                scope |= _WITH_LIST
                prev = ""
                continue
        elif action == _CLAUSE or (action == _LATERAL and scope & _IN_FROM):
            scope &= ~_IN_FROM
        prev = upper
        i += 1
    return operation, first


def _unquote(name: str) -> str:
    """``name`` as compared with CTE names: case-insensitive, backticks removed."""
    if name[0] == "`" and name[-1] == "`" and len(name) > 1:
        return name[1:-1].replace("``", "`").lower()
    return name.lower()


def _cte_name_at(toks: list[_Token], i: int, end: int) -> int:
    """The index of the first CTE name if the WITH at ``i`` opens common table expressions,
    else -1.

    ``WITH [RECURSIVE] name [(columns)] [AS] (query)``: Databricks makes ``AS`` optional.
    """
    j = i + 1
    if j < end and toks[j][1].upper() == "RECURSIVE":
        j += 1
    if j >= end or toks[j][0] not in _NAMES:
        return -1
    name = j
    j += 1
    if j < end and toks[j] == _OPEN:
        j += 1
        if j < end and toks[j][1].upper() in _QUERY_STARTS:
            return name
        # A column list holds names and commas only. Stopping at anything else keeps the
        # look-aheads of different WITHs apart: nested ones do not each rescan the rest.
        while j < end and (toks[j][0] in _NAMES or toks[j] == _COMMA):
            j += 1
        if j >= end or toks[j] != _CLOSE:
            return -1
        j += 1
        if j < end and toks[j] == _OPEN:
            return name
    return name if j < end and toks[j][0] == _WORD and toks[j][1].upper() == "AS" else -1


def _read_name(toks: list[_Token], i: int, end: int) -> tuple[str, int]:
    """A possibly qualified name starting at ``i`` and the index after it."""
    name = toks[i][1]
    i += 1
    while i + 1 < end and toks[i] == _DOT and toks[i + 1][0] in _NAMES:
        name += "." + toks[i + 1][1]
        i += 2
    return name, i


def _read_target(
    toks: list[_Token],
    i: int,
    end: int,
    expect: int,
    *,
    ctes: set[str],
    items: list[str],
    targets: list[tuple[str, bool]],
) -> int:
    """Add the name at ``i`` to ``items`` and ``targets`` unless it is a CTE or a function;
    the index after it."""
    name, i = _read_name(toks, i, end)
    function = expect == _FROM_TABLE and i < end and toks[i][1] == "("  # range(10)
    if not function and _unquote(name) not in ctes:
        items.append(name)
        targets.append((name, expect == _OTHER))
    return i


def _read_verb(
    toks: list[_Token], i: int, end: int, verb: _Verb, items: list[str]
) -> tuple[int, int]:
    """Add the operation (verb and command keywords) at ``i``; the index after it and what a
    name read next is."""
    words = [toks[i][1]]
    expect = verb.target
    j = i + 1
    while j < end:
        kind, text = toks[j]
        upper = text.upper()
        if kind != _WORD or (upper not in verb.keep and upper not in verb.drop):
            break
        following = toks[j + 1] if j + 1 < end else _SEMICOLON
        if following == _DOT:
            break  # the first part of a qualified name (``CREATE TABLE schema . t``)
        # A keyword followed by no name may itself be the name (``DROP TABLE location``).
        if j > i + 1 and following[0] not in _NAMES:
            break
        if upper in verb.keep:
            words.append(text)
            if upper in _PRINCIPALS:
                expect = -1
            elif expect < 0:
                pass
            elif upper in verb.collection:
                expect = _COLLECTION
            elif upper in verb.other:
                expect = _OTHER
        j += 1
    items.append(" ".join(words))
    if verb.target == _NO_TARGET or expect < 0:
        return j, _NO_TARGET
    return j, expect


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
    """``sql`` with every literal replaced by ``?`` and comments removed, not truncated.

    Of a text with more tokens than one per eight characters of ``max(len(sql), 64 KiB)`` (more
    than 8,192 in up to 64 KiB) only the start is kept, like the summary's.
    """
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
