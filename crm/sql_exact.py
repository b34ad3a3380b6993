"""Exact arithmetic in SQL, with the same results on PostgreSQL and SQLite.

Money columns are Numeric(…, 2): PostgreSQL computes on them exactly, SQLite keeps them as
floating point. Scaled first to a whole number of hundredths, every later product and sum is
exact on both. `div_half_even` rounds a quotient the way Python's `Decimal.quantize` does by
default (half to even), so that a sum made in SQL is the sum of the figures Python shows one
record at a time. `epoch_microseconds` turns a timestamp into a whole number, for exact durations
and comparisons with a number of days.

Two flavours of whole numbers on PostgreSQL: `hundredths` gives a bigint (fast: enough for an
amount times a percentage), `wide_hundredths` a numeric without decimals (no overflow: for
products of quantities, prices and discounts). Division and remainder follow their dividend.
SQLite has only 64-bit integers. Results come back as int, or as a Decimal without decimals.
"""

from sqlalchemy import BigInteger, Integer, Numeric, case
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class hundredths(FunctionElement):  # noqa: N801 - used as a SQL function
    """A column of two decimals times 100, as a 64-bit whole number (|value| < 9.2e16)."""

    type = BigInteger()
    name = "hundredths"
    inherit_cache = True


class wide_hundredths(FunctionElement):  # noqa: N801
    """A column of two decimals times 100, as a whole number of any size on PostgreSQL."""

    type = Numeric()
    name = "wide_hundredths"
    inherit_cache = True


class _Arithmetic(FunctionElement):
    """(dividend, divisor) -> a whole number of the dividend's type."""

    inherit_cache = True

    def __init__(self, dividend, divisor):
        super().__init__(dividend, divisor)
        self.type = next(iter(self.clauses)).type


class int_div(_Arithmetic):  # noqa: N801
    """Whole-number division, truncated toward zero."""

    name = "int_div"
    inherit_cache = True


class int_mod(_Arithmetic):  # noqa: N801
    """The remainder of int_div, of the dividend's sign."""

    name = "int_mod"
    inherit_cache = True


class epoch_microseconds(FunctionElement):  # noqa: N801
    """Microseconds from 1970-01-01 to a (naive UTC) timestamp column."""

    type = BigInteger()
    name = "epoch_microseconds"
    inherit_cache = True


def _args(element, compiler, **kw) -> list[str]:
    """The arguments as SQL, each in parentheses (an argument may be `a - b`)."""
    return [f"({compiler.process(arg, **kw)})" for arg in element.clauses]


def _is_integer(element) -> bool:
    return isinstance(next(iter(element.clauses)).type, Integer)


@compiles(hundredths)
def _hundredths(element, compiler, **kw):
    (value,) = _args(element, compiler, **kw)
    return f"CAST({value} * 100 AS BIGINT)"


@compiles(wide_hundredths)
def _wide_hundredths(element, compiler, **kw):
    (value,) = _args(element, compiler, **kw)
    return f"({value} * 100)"  # numeric: exact; its two zero decimals div() and mod() ignore


@compiles(hundredths, "sqlite")
@compiles(wide_hundredths, "sqlite")
def _hundredths_sqlite(element, compiler, **kw):
    (value,) = _args(element, compiler, **kw)
    return f"CAST(round({value} * 100) AS INTEGER)"


@compiles(int_div)
def _int_div(element, compiler, **kw):
    dividend, divisor = _args(element, compiler, **kw)
    return f"({dividend} / {divisor})" if _is_integer(element) else f"div({dividend}, {divisor})"


@compiles(int_mod)
def _int_mod(element, compiler, **kw):
    return "mod({}, {})".format(*_args(element, compiler, **kw))  # for bigint and numeric


@compiles(int_div, "sqlite")
def _int_div_sqlite(element, compiler, **kw):
    return "({} / {})".format(*_args(element, compiler, **kw))


@compiles(int_mod, "sqlite")
def _int_mod_sqlite(element, compiler, **kw):
    return "({} % {})".format(*_args(element, compiler, **kw))


@compiles(epoch_microseconds)
def _epoch_microseconds(element, compiler, **kw):
    (value,) = _args(element, compiler, **kw)
    return f"(extract(epoch from {value}) * 1000000)"  # numeric since PostgreSQL 14


@compiles(epoch_microseconds, "sqlite")
def _epoch_microseconds_sqlite(element, compiler, **kw):
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds, then the six digits after the dot.
    (value,) = _args(element, compiler, **kw)
    return (
        f"(CAST(strftime('%s', {value}) AS INTEGER) * 1000000"
        f" + CAST(substr({value}, 21, 6) AS INTEGER))"
    )


# Added before dividing so that the dividend is positive: truncating is then rounding down.
_SHIFT = 10**18  # a multiple of every divisor used, larger than any amount in hundredths


def div_half_even(dividend, divisor: int):
    """dividend / divisor rounded half to even, for a whole-number dividend of either sign and
    an even divisor dividing 10**18 (100, 10**6...); the dividend appears only twice in the SQL.

    With x = q × d + r (0 <= r < d): (x + d/2) // d is q, or q + 1 from r = d/2 on; at exactly
    r = d/2 with q even, that is one too many, and it is then that x - d/2 is a multiple of 2d.
    A bigint dividend must stay within ±8e18 once shifted: amounts up to 1e16 cents.
    """
    half = divisor // 2
    rounded_up = int_div(dividend + (half + _SHIFT), divisor) - _SHIFT // divisor
    tie_to_even = case((int_mod(dividend - half, 2 * divisor) == 0, 1), else_=0)
    return rounded_up - tie_to_even
