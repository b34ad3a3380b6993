"""Exact arithmetic in SQL, with the same results on PostgreSQL and SQLite.

Money columns are Numeric(…, 2): PostgreSQL computes on them exactly, SQLite keeps them as
floating point. Scaled first to a whole number of hundredths (`hundredths`), every later product
and sum is exact on both. `div_half_even` rounds a quotient the way Python's
`Decimal.quantize` does by default (half to even), so that a sum made in SQL is the sum of the
figures Python shows one record at a time. `epoch_microseconds` turns a timestamp into a whole
number, for exact durations and comparisons with a number of days.

The results are whole numbers: int on SQLite, a Decimal without decimals on PostgreSQL.
"""

from sqlalchemy import BigInteger, case
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class hundredths(FunctionElement):  # noqa: N801 - used as a SQL function
    """A column of two decimals times 100, as a whole number."""

    type = BigInteger()
    name = "hundredths"
    inherit_cache = True


class int_div(FunctionElement):  # noqa: N801
    """Whole-number division, truncated toward zero."""

    type = BigInteger()
    name = "int_div"
    inherit_cache = True


class int_mod(FunctionElement):  # noqa: N801
    """The remainder of int_div, of the dividend's sign."""

    type = BigInteger()
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


@compiles(hundredths)
def _hundredths(element, compiler, **kw):
    (value,) = _args(element, compiler, **kw)
    return f"({value} * 100)"  # numeric: exact, two zero decimals that div() and mod() ignore


@compiles(hundredths, "sqlite")
def _hundredths_sqlite(element, compiler, **kw):
    (value,) = _args(element, compiler, **kw)
    return f"CAST(round({value} * 100) AS INTEGER)"


@compiles(int_div)
def _int_div(element, compiler, **kw):
    return "div({}, {})".format(*_args(element, compiler, **kw))


@compiles(int_div, "sqlite")
def _int_div_sqlite(element, compiler, **kw):
    return "({} / {})".format(*_args(element, compiler, **kw))


@compiles(int_mod)
def _int_mod(element, compiler, **kw):
    return "mod({}, {})".format(*_args(element, compiler, **kw))


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
    """
    half = divisor // 2
    rounded_up = int_div(dividend + (half + _SHIFT), divisor) - _SHIFT // divisor
    tie_to_even = case((int_mod(dividend - half, 2 * divisor) == 0, 1), else_=0)
    return rounded_up - tie_to_even
