"""Expressions in scenario files: whitelisted text → a sympy tree → vectorised functions.

A scenario may give its launch and its medium as formulas (``amplitude = "exp(-x**2)"``,
``K2 = "k**2 * (1 - (x / a)**2)"``). The text is never evaluated: it is parsed by Python's
own parser (:func:`ast.parse`, which only builds a tree) and the tree is walked node by
node against a whitelist — numbers, the allowed names, arithmetic (``+ - * / **``),
comparisons and ``and``/``or``/``not`` inside ``where(...)``, and calls of the functions
in :data:`FUNCTIONS` by their bare name. Anything else (an attribute access, a subscript,
a string, a lambda, a keyword argument, an unknown name, ``__import__``) is an
:class:`ExpressionError` naming the offending piece and its column, raised before
anything runs. The walk builds the sympy expression directly (no ``sympify``, which calls
``eval``), so the only code ever generated is sympy's printing of a tree of whitelisted
nodes (:func:`sympy.lambdify`, numpy and scipy.special). sympy also gives the exact
gradient of K² for the ray force (:meth:`Expression.gradient`).

Numbers become sympy Floats, except small integer exponents (``x**2`` stays a polynomial,
so its derivatives are exact and cheap): an integer power tower such as ``9**9**9`` is
then a float overflow, not an exact integer with 370 million digits.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from collections.abc import Callable, Mapping

import numpy as np
import sympy

#: Functions an expression may call, by name: elementwise and differentiable almost
#: everywhere (``abs``, ``where`` and ``sign`` piecewise). ``airy`` is Ai.
FUNCTIONS: dict[str, Callable] = {
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "sinh": sympy.sinh,
    "cosh": sympy.cosh,
    "tanh": sympy.tanh,
    "arctan": sympy.atan,
    "arctan2": sympy.atan2,
    "abs": sympy.Abs,
    "sign": sympy.sign,
    "erf": sympy.erf,
    "erfc": sympy.erfc,
    "airy": sympy.airyai,
    "airybi": sympy.airybi,
    "min": sympy.Min,
    "max": sympy.Max,
}
#: Number of arguments of each function (None: two or more).
_ARITY = {"min": None, "max": None, "where": 3, "arctan2": 2}
#: Names every expression knows besides its variables and the scenario's constants.
BUILTIN_CONSTANTS = {"pi": sympy.pi, "e": sympy.E}
#: Names that cannot be redefined as constants: variables, builtins and function names.
RESERVED = frozenset({"x", "z", "k", *BUILTIN_CONSTANTS, *FUNCTIONS, "where"})
#: Longest accepted expression (characters): a formula, not a program.
MAX_LENGTH = 2000
#: Integer exponents up to this size stay exact (polynomials); larger ones are floats.
EXACT_EXPONENT = 16

_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_COMPARE = {
    ast.Lt: sympy.Lt,
    ast.LtE: sympy.Le,
    ast.Gt: sympy.Gt,
    ast.GtE: sympy.Ge,
}
_SYMBOLS = {name: sympy.Symbol(name, real=True) for name in ("x", "z")}


class ExpressionError(ValueError):
    """An expression is not valid (syntax) or not allowed (outside the whitelist)."""


def _what(node: ast.AST) -> str:
    try:
        return f"'{ast.unparse(node)}'"
    except Exception:  # pragma: no cover - unparse handles every parsed node
        return type(node).__name__


class _Builder:
    """Walks a parsed tree, allowing only whitelisted nodes, building sympy objects."""

    def __init__(self, names: Mapping[str, sympy.Basic]):
        self.names = names

    def fail(self, node: ast.AST, why: str):
        col = getattr(node, "col_offset", None)
        where = f" (column {col + 1})" if col is not None else ""
        raise ExpressionError(f"{why}: {_what(node)}{where}")

    def build(self, node: ast.AST, condition: bool = False):
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.fail(node, "only real numbers are allowed as literals")
            if isinstance(v, int) and abs(v) <= EXACT_EXPONENT:
                return sympy.Integer(v)
            return sympy.Float(v)
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                allowed = ", ".join(sorted(self.names))
                self.fail(node, f"unknown name (allowed: {allowed} and the functions)")
            return self.names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.build(node.left), self.build(node.right)
            if left.is_number and right.is_number:
                return self.numeric(node, left, right)
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.build(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if condition and isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return sympy.Not(self.build(node.operand, condition=True))
        if condition and isinstance(node, ast.BoolOp):
            parts = [self.build(v, condition=True) for v in node.values]
            return sympy.And(*parts) if isinstance(node.op, ast.And) else sympy.Or(*parts)
        if isinstance(node, ast.Compare):
            if not condition:
                self.fail(node, "a comparison is allowed only as the condition of where(...)")
            if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
                self.fail(node, "use one comparison <, <=, > or >= (chain with and/or)")
            left, right = self.build(node.left), self.build(node.comparators[0])
            return _COMPARE[type(node.ops[0])](left, right)
        if isinstance(node, ast.Call):
            return self.call(node)
        self.fail(node, "not allowed in an expression")

    def numeric(self, node: ast.BinOp, left, right):
        """Arithmetic on two numbers, done in floats: an exact sympy power of integers
        (``9**9**9``) would compute all its digits before anything could stop it."""
        try:
            value = _BINARY[type(node.op)](float(left), float(right))
        except OverflowError:
            self.fail(node, "the value is too large for a float")
        except ZeroDivisionError:
            self.fail(node, "division by zero")
        if isinstance(value, complex) or not np.isfinite(value):
            self.fail(node, "the numbers give a complex or infinite value")
        if float(value).is_integer() and abs(value) <= EXACT_EXPONENT:
            return sympy.Integer(int(value))
        return sympy.Float(value)

    def call(self, node: ast.Call):
        if not isinstance(node.func, ast.Name):
            self.fail(node.func, "only the listed functions may be called, by their name")
        name = node.func.id
        if name != "where" and name not in FUNCTIONS:
            allowed = ", ".join(sorted([*FUNCTIONS, "where"]))
            self.fail(node.func, f"unknown function (allowed: {allowed})")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            self.fail(node, "functions take plain positional arguments")
        n = len(node.args)
        arity = _ARITY.get(name, 1)
        if (arity is None and n < 2) or (arity is not None and n != arity):
            need = "two or more" if arity is None else str(arity)
            self.fail(node, f"{name} takes {need} argument(s), got {n}")
        if name == "where":
            cond = self.build(node.args[0], condition=True)
            a, b = self.build(node.args[1]), self.build(node.args[2])
            return sympy.Piecewise((a, cond), (b, True))
        return FUNCTIONS[name](*(self.build(a) for a in node.args))


@dataclasses.dataclass(frozen=True)
class Expression:
    """A validated formula of ``variables`` (a sympy expression) and its numpy form.

    Calling it evaluates elementwise on arrays (broadcast together) and returns floats of
    their broadcast shape, also where the formula is a constant. Outside its domain
    (``sqrt`` of a negative, ``log`` of zero) a value is NaN or ±inf, without a warning:
    the caller checks finiteness where it matters and names the parameter."""

    text: str
    variables: tuple[str, ...]
    expr: sympy.Expr

    @functools.cached_property
    def _numeric(self) -> Callable:
        symbols = [_SYMBOLS[v] for v in self.variables]
        return sympy.lambdify(symbols, self.expr, modules=["scipy", "numpy"])

    def __call__(self, *values):
        arrays = np.broadcast_arrays(*(np.asarray(v, float) for v in values))
        with np.errstate(all="ignore"):  # NaN/inf are results; callers check finiteness
            out = np.asarray(self._numeric(*arrays))
        if np.iscomplexobj(out):
            out = np.where(np.imag(out) == 0, np.real(out), np.nan)
        return np.array(np.broadcast_to(out, arrays[0].shape), dtype=float)

    @property
    def constant(self) -> bool:
        """True if the formula depends on none of its variables."""
        return not (self.expr.free_symbols & {_SYMBOLS[v] for v in self.variables})

    def depends_on(self, variable: str) -> bool:
        return _SYMBOLS[variable] in self.expr.free_symbols

    def derivative(self, variable: str) -> Expression:
        """∂/∂variable, exact (sympy)."""
        d = sympy.diff(self.expr, _SYMBOLS[variable])
        return Expression(f"d({self.text})/d{variable}", self.variables, d)

    def gradient(self) -> tuple[Expression, ...]:
        """The exact partial derivatives in the order of ``variables``."""
        return tuple(self.derivative(v) for v in self.variables)

    def __reduce__(self):  # a lambdified function does not pickle; the text does
        return (_rebuild, (self.text, self.variables, self.expr))


def _rebuild(text, variables, expr) -> Expression:
    return Expression(text, variables, expr)


def parse(
    text: str,
    variables: tuple[str, ...] = ("x",),
    constants: Mapping[str, float] | None = None,
    wavenumber: float | None = None,
) -> Expression:
    """Parse and validate ``text`` into an :class:`Expression` of ``variables``.

    Names allowed: the ``variables`` (x, z), ``k`` (= ``wavenumber``, if given), pi, e and
    the ``constants``. Raises :class:`ExpressionError` (never evaluates the text).

    Examples
    --------
    >>> f = parse("exp(-(x / w)**2)", constants={"w": 2.0})
    >>> float(f(2.0))
    0.36787944117144233
    >>> parse("sin(y)")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    compare.expressions.ExpressionError: unknown name (allowed: e, pi, x ...): 'y' (column 5)
    """
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be a string; got {type(text).__name__}")
    if not text.strip():
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is {len(text)} characters; at most {MAX_LENGTH}")
    names: dict[str, sympy.Basic] = dict(BUILTIN_CONSTANTS)
    for name, value in (constants or {}).items():
        names[name] = sympy.Float(float(value))
    if wavenumber is not None:
        names["k"] = sympy.Float(float(wavenumber))
    for v in variables:
        names[v] = _SYMBOLS[v]
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a formula ({exc.msg}, column {exc.offset})") from None
    try:
        expr = _Builder(names).build(tree.body)
    except (TypeError, ValueError, OverflowError, KeyError) as exc:
        if isinstance(exc, ExpressionError):
            raise
        raise ExpressionError(f"cannot be built: {exc}") from None
    if isinstance(expr, sympy.logic.boolalg.Boolean) or not isinstance(expr, sympy.Expr):
        raise ExpressionError("the formula must be a number, not a condition")
    if expr.has(sympy.I):
        raise ExpressionError(f"the formula is complex: {expr} (use real functions)")
    if expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise ExpressionError(f"the formula is infinite or undefined everywhere: {expr}")
    return Expression(text.strip(), tuple(variables), expr)
