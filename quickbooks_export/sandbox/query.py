"""QuickBooks' query language: parse and run `SELECT ... FROM Entity WHERE ... ORDERBY ... STARTPOSITION/MAXRESULTS`.

Grammar (keywords case-insensitive, as in QBO; no OR, no JOIN, no NOT):

    SELECT * [, Field ...] | COUNT(*) | Field [, Field ...]
    FROM Entity
    [WHERE cond [AND cond ...]]        cond: Field (= | < | > | <= | >= | !=) literal
                                             Field IN (literal, ...)
                                             Field LIKE 'pattern with %'
    [ORDERBY | ORDER BY Field [ASC | DESC] [, ...]]
    [STARTPOSITION n] [MAXRESULTS n]   (1-based; MAXRESULTS 1..1000, default 100)

Literals: 'strings' with backslash escapes (\\' for an apostrophe), numbers, true/false. Field names may be nested
(`MetaData.LastUpdatedTime`) and are matched case-insensitively. A field holding an object is compared through its
scalar: a reference's `value` (`CustomerRef = '20'`), an e-mail's `Address` (`PrimaryEmailAddr = 'a@b.com'`), a
phone's `FreeFormNumber`, a web address' `URI`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation

from .faults import query_parser_error, query_validation_error
from .store import COMPANY_TZ

DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000
OPERATORS = ("=", "<", ">", "<=", ">=", "!=")
KEYWORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "ORDERBY", "ORDER", "BY", "ASC", "DESC",
    "STARTPOSITION", "MAXRESULTS", "IN", "LIKE", "COUNT", "TRUE", "FALSE",
}  # fmt: skip

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<symbol><=|>=|!=|<>|[*,()=<>])
    """,
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class Token:
    kind: str  # string | number | name | keyword | symbol | end
    text: str
    column: int
    value: object = None


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str  # one of OPERATORS, "IN" or "LIKE"
    values: tuple


@dataclass
class Query:
    entity: str
    count: bool = False
    fields: list[str] | None = None  # None: every field
    conditions: list[Condition] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise query_parser_error(f'Lexical error at line 1, column {position + 1}. Encountered: "{text[position]}"')
        kind = match.lastgroup
        raw = match.group()
        column = position + 1
        position = match.end()
        if kind == "space":
            continue
        if kind == "string":
            tokens.append(Token("string", raw, column, _ESCAPE.sub(r"\1", raw[1:-1])))
        elif kind == "number":
            tokens.append(Token("number", raw, column, Decimal(raw)))
        elif kind == "name" and raw.upper() in KEYWORDS:
            tokens.append(Token("keyword", raw.upper(), column))
        else:
            tokens.append(Token(kind, "!=" if raw == "<>" else raw, column))
    tokens.append(Token("end", "<EOF>", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def error(self, expected: str):
        token = self.current
        return query_parser_error(
            f'Encountered " {token.text} " at line 1, column {token.column}. Was expecting: {expected}'
        )

    def take(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.current.kind == "keyword" and self.current.text in words

    def at_symbol(self, symbol: str) -> bool:
        return self.current.kind == "symbol" and self.current.text == symbol

    def expect_keyword(self, word: str) -> None:
        if not self.at_keyword(word):
            raise self.error(word)
        self.take()

    def expect_symbol(self, symbol: str) -> None:
        if not self.at_symbol(symbol):
            raise self.error(f'"{symbol}"')
        self.take()

    def name(self) -> str:
        if self.current.kind != "name":
            raise self.error("a field name")
        return self.take().text

    def integer(self, clause: str) -> int:
        token = self.current
        if token.kind != "number" or "." in token.text:
            raise self.error(f"an integer after {clause}")
        self.take()
        return int(token.text)

    def literal(self) -> object:
        token = self.current
        if token.kind in ("string", "number"):
            self.take()
            return token.value
        if self.at_keyword("TRUE", "FALSE"):
            self.take()
            return token.text == "TRUE"
        raise self.error("a quoted string, a number, true or false")

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        count = False
        fields: list[str] | None = []
        if self.at_keyword("COUNT"):
            self.take()
            self.expect_symbol("(")
            self.expect_symbol("*")
            self.expect_symbol(")")
            count = True
        elif self.at_symbol("*"):
            self.take()
            fields = None
            # python-quickbooks asks for `SELECT *, Sku FROM Item`: extra names after * change nothing.
            while self.at_symbol(","):
                self.take()
                self.name()
        else:
            fields.append(self.name())
            while self.at_symbol(","):
                self.take()
                fields.append(self.name())
        self.expect_keyword("FROM")
        query = Query(entity=self.name(), count=count, fields=None if count else fields)
        if self.at_keyword("WHERE"):
            self.take()
            query.conditions.append(self.condition())
            while self.at_keyword("AND"):
                self.take()
                query.conditions.append(self.condition())
        if self.at_keyword("ORDERBY", "ORDER"):
            if self.take().text == "ORDER":
                self.expect_keyword("BY")
            query.order.append(self.order_item())
            while self.at_symbol(","):
                self.take()
                query.order.append(self.order_item())
        seen: set[str] = set()
        while self.at_keyword("STARTPOSITION", "MAXRESULTS") and self.current.text not in seen:
            clause = self.take().text
            seen.add(clause)
            value = self.integer(clause)
            if clause == "STARTPOSITION":
                query.start_position = value
            else:
                query.max_results = value
        if self.current.kind != "end":
            raise self.error("<EOF>")
        if query.start_position < 1:
            raise query_validation_error("STARTPOSITION must be 1 or more")
        # *unconfirmed*: QBO documents 1000 as the largest page; asking for more is refused rather than capped.
        if not 1 <= query.max_results <= MAX_MAX_RESULTS:
            raise query_validation_error(f"MAXRESULTS must be between 1 and {MAX_MAX_RESULTS}")
        return query

    def condition(self) -> Condition:
        name = self.name()
        if self.at_keyword("IN"):
            self.take()
            self.expect_symbol("(")
            values = [self.literal()]
            while self.at_symbol(","):
                self.take()
                values.append(self.literal())
            self.expect_symbol(")")
            return Condition(name, "IN", tuple(values))
        if self.at_keyword("LIKE"):
            self.take()
            if self.current.kind != "string":
                raise self.error("a quoted pattern")
            return Condition(name, "LIKE", (self.take().value,))
        if self.current.kind == "symbol" and self.current.text in OPERATORS:
            operator = self.take().text
            return Condition(name, operator, (self.literal(),))
        raise self.error('"=", "<", ">", "<=", ">=", "IN" or "LIKE"')

    def order_item(self) -> tuple[str, bool]:
        name = self.name()
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.take().text == "DESC"
        return name, descending


def parse(text: str) -> Query:
    """Parse a query; raises a QboFault (4000 QueryParserError, 4001 QueryValidationError) when malformed."""
    return _Parser(text).parse()


# --- Evaluation ---

_SCALAR_KEYS = ("value", "Address", "FreeFormNumber", "URI")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def _lookup(entity: dict, path: str) -> object:
    value: object = entity
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        if part in value:
            value = value[part]
            continue
        folded = part.casefold()
        value = next((item for key, item in value.items() if key.casefold() == folded), None)
    if isinstance(value, dict):
        value = next((value[key] for key in _SCALAR_KEYS if key in value), None)
    return value


def _as_datetime(text: str) -> datetime | None:
    try:
        if _DATE.match(text):
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=COMPANY_TZ)
        if _DATETIME.match(text):
            moment = datetime.fromisoformat(text)
            return moment if moment.tzinfo else moment.replace(tzinfo=COMPANY_TZ)
    except ValueError:
        return None
    return None


def _comparable(stored: object, literal: object) -> tuple[object, object] | None:
    """Both sides in one comparable type, or None when they cannot be compared (the row does not match)."""
    if stored is None:
        return None
    if isinstance(stored, bool):
        if isinstance(literal, str) and literal.lower() in ("true", "false"):
            literal = literal.lower() == "true"
        return (stored, literal) if isinstance(literal, bool) else None
    if isinstance(stored, int | float | Decimal):
        try:
            return Decimal(str(stored)), Decimal(str(literal))
        except InvalidOperation:
            return None
    if isinstance(stored, str) and isinstance(literal, str | Decimal):
        literal = str(literal)
        # Ids and reference values are numeric strings: '10' sorts after '9'.
        if stored.isdigit() and literal.isdigit():
            return int(stored), int(literal)
        stored_moment, literal_moment = _as_datetime(stored), _as_datetime(literal)
        if stored_moment and literal_moment:
            return stored_moment, literal_moment
        # *unconfirmed*: QBO's string comparisons are case-insensitive here (as its DisplayName uniqueness is).
        return stored.casefold(), literal.casefold()
    return None


def _like(stored: object, pattern: str) -> bool:
    if not isinstance(stored, str):
        return False
    regex = ".*".join(re.escape(part) for part in pattern.split("%"))
    return re.fullmatch(regex, stored, flags=re.IGNORECASE | re.DOTALL) is not None


def _matches(entity: dict, condition: Condition, equal: _EqualityMatcher | None = None) -> bool:
    stored = _lookup(entity, condition.field)
    if condition.operator == "LIKE":
        return _like(stored, condition.values[0])
    if equal is not None and isinstance(stored, str):
        return equal.matches(stored)
    if condition.operator == "IN":
        return any(_compare(stored, "=", literal) for literal in condition.values)
    return _compare(stored, condition.operator, condition.values[0])


class _EqualityMatcher:
    """`Field = literal` / `Field IN (literals)` against a stored string, with the literals prepared once per query:
    the same answer as `_compare(stored, "=", literal)` for any literal, with one set look-up per row instead of
    one comparison per literal (100 DocNumbers x every invoice of the company otherwise).

    `_comparable` for a string: two digit strings compare as integers; else two dates / date-times as moments;
    else case-insensitively. A digit string is never a date, so each literal lands in exactly one of three sets."""

    def __init__(self, literals: tuple) -> None:
        self.numbers: set[int] = set()  # digit literals, as integers
        self.moments: set[datetime] = set()  # date / date-time literals
        self.digit_texts: set[str] = set()  # digit literals as written (compared with a non-digit string)
        self.texts_all: set[str] = set()  # every non-digit literal, case-folded (compared with a digit string)
        self.texts_no_moment: set[str] = set()  # non-digit literals that are no moment, case-folded
        for literal in literals:
            if not isinstance(literal, str | Decimal):
                raise TypeError("not a string or number literal")
            text = str(literal)
            if text.isdigit():
                self.numbers.add(int(text))  # ValueError for a digit that is no decimal digit ("²"): general path
                self.digit_texts.add(text)
                continue
            folded = text.casefold()
            self.texts_all.add(folded)
            moment = _as_datetime(text)
            if moment is not None:
                self.moments.add(moment)
            else:
                self.texts_no_moment.add(folded)

    @classmethod
    def for_condition(cls, condition: Condition) -> _EqualityMatcher | None:
        if condition.operator not in ("=", "IN"):
            return None
        try:
            return cls(condition.values)
        except (TypeError, ValueError):  # a true/false literal, or an odd digit: the general comparison
            return None

    def matches(self, stored: str) -> bool:
        if stored.isdigit():
            # Against a digit literal: as integers; against any other: case-folded (a digit string is no moment).
            return (bool(self.numbers) and int(stored) in self.numbers) or stored.casefold() in self.texts_all
        # Never equal to a digit literal as integers: the pair compares case-folded (a digit literal is no moment).
        folded = stored.casefold()
        moment = _as_datetime(stored)
        if moment is None:
            return folded in self.texts_all or folded in self.digit_texts
        return moment in self.moments or folded in self.texts_no_moment or folded in self.digit_texts


def _compare(stored: object, operator: str, literal: object) -> bool:
    pair = _comparable(stored, literal)
    if pair is None:
        return False
    left, right = pair
    try:
        return {
            "=": left == right,
            "!=": left != right,
            "<": left < right,
            ">": left > right,
            "<=": left <= right,
            ">=": left >= right,
        }[operator]
    except TypeError:
        return False


def _sort_key(entity: dict, path: str) -> tuple:
    value = _lookup(entity, path)
    if value is None:
        return (9,)
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float | Decimal):
        return (0, Decimal(str(value)))
    if isinstance(value, str):
        if value.isdigit():
            return (0, Decimal(value))
        moment = _as_datetime(value)
        if moment is not None:
            return (1, moment.timestamp())
        return (2, value.casefold())
    return (9,)


def _by_id(query: Query, entities: list[dict]) -> list[dict]:
    """The entities an `Id = n` / `Id IN (n, ...)` condition can match, looked up by Id as QuickBooks' own index
    would, instead of comparing every entity with every id (10,000 invoices x 1,000 ids per query otherwise). The
    same rows as a scan: every condition is still checked on them; any other condition, or a literal that is not a
    plain number, scans."""
    for condition in query.conditions:
        if condition.field.casefold() != "id" or condition.operator not in ("=", "IN"):
            continue
        literals = [str(value) for value in condition.values]
        if not all(literal.isdigit() for literal in literals):
            break
        index = {int(entity["Id"]): entity for entity in entities if str(entity.get("Id", "")).isdigit()}
        return [index[number] for number in {int(literal) for literal in literals} if number in index]
    return entities


def run(query: Query, entity_name: str, entities: list[dict]) -> dict:
    """The `QueryResponse` for `query` over `entities` (all of one type)."""
    candidates = _by_id(query, entities)
    checks = [(condition, _EqualityMatcher.for_condition(condition)) for condition in query.conditions]
    rows = [entity for entity in candidates if all(_matches(entity, c, equal) for c, equal in checks)]
    if query.count:
        return {"totalCount": len(rows)}
    rows.sort(key=lambda entity: int(entity["Id"]) if entity["Id"].isdigit() else 0)
    for path, descending in reversed(query.order):
        rows.sort(key=lambda entity, path=path: _sort_key(entity, path), reverse=descending)
    page = rows[query.start_position - 1 : query.start_position - 1 + query.max_results]
    if not page:
        return {}
    if query.fields is not None:
        page = [_project(entity, query.fields) for entity in page]
    return {entity_name: page, "startPosition": query.start_position, "maxResults": len(page)}


def _project(entity: dict, fields: list[str]) -> dict:
    # *unconfirmed*: which system fields QBO adds to a projection; we keep Id and SyncToken so rows stay usable.
    wanted = {name.split(".")[0].casefold() for name in fields} | {"id", "synctoken"}
    projected = {key: value for key, value in entity.items() if key.casefold() in wanted}
    projected["domain"] = entity.get("domain", "QBO")
    projected["sparse"] = True
    return projected
