"""How long a ban lasts, growing for repeat offenders (fail2ban's ``bantime.increment``).

With increment on, the n-th ban of an address (n counted from its earlier bans, in this jail or
in every jail with ``overalljails``) lasts:

- ``bantime * multipliers[min(n, len-1)]`` when ``multipliers`` is set (``1 2 4 8 16 32 64``);
- else the value of ``formula``, by default ``bantime * 2**min(n, 20) * factor`` — fail2ban's
  default, ``ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor``;

capped at ``maxtime``, plus a random part up to ``rndtime``. A formula is an arithmetic
expression over ``ban.Time``, ``ban.Count``, ``banFactor`` and ``math`` functions; it is parsed
and evaluated by a small interpreter here, never with ``eval``.
"""

from __future__ import annotations

import ast
import math
import operator
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_FORMULA = "ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor"

_BIN: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: math.pow,  # floats: an overflow is an error, not a huge number
    ast.LShift: lambda a, b: int(a) << min(int(b), 64),
    ast.RShift: lambda a, b: int(a) >> min(int(b), 64),
}
_CMP: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_MATH = {
    name: getattr(math, name)
    for name in ("exp", "log", "log2", "log10", "pow", "sqrt", "floor", "ceil", "fabs")
}
_FUNCS = {"min": min, "max": max, "abs": abs, "int": int, "float": float, "round": round}


class FormulaError(ValueError):
    """A formula that uses something other than arithmetic over the allowed names."""


def compile_formula(text: str) -> ast.Expression:
    """Parse and check a formula once; raise FormulaError naming what is not allowed."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise FormulaError(f"bantime.formula {text!r}: {e.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            base = node.value
            ok = isinstance(base, ast.Name) and (
                (base.id == "ban" and node.attr in ("Time", "Count"))
                or (base.id == "math" and node.attr in _MATH)
            )
            if not ok:
                raise FormulaError(f"bantime.formula {text!r}: {ast.unparse(node)} is not allowed")
        elif isinstance(node, ast.Name) and node.id not in ("ban", "math", "banFactor", *_FUNCS):
            raise FormulaError(f"bantime.formula {text!r}: unknown name {node.id!r}")
        elif isinstance(node, ast.Call | ast.IfExp | ast.Compare | ast.BoolOp | ast.UnaryOp):
            continue
        elif isinstance(node, ast.expr) and not isinstance(
            node, ast.BinOp | ast.Constant | ast.Name | ast.Attribute
        ):
            raise FormulaError(f"bantime.formula {text!r}: {type(node).__name__} is not allowed")
    return tree


def _eval(node: ast.AST, env: dict[str, float]) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body, env)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        raise FormulaError(f"unknown name {node.id!r}")
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if node.value.id == "ban":
            return env["ban." + node.attr]
        return _MATH[node.attr]
    if isinstance(node, ast.BinOp):
        return _BIN[type(node.op)](_eval(node.left, env), _eval(node.right, env))
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, env)
        return (
            -v if isinstance(node.op, ast.USub) else (not v if isinstance(node.op, ast.Not) else v)
        )
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, env)
            if not _CMP[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, env) else node.orelse, env)
    if isinstance(node, ast.BoolOp):
        values = [_eval(v, env) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Call):
        fn: Any
        if isinstance(node.func, ast.Attribute):
            fn = _eval(node.func, env)
        elif isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
            fn = _FUNCS[node.func.id]
        else:
            raise FormulaError("only math functions and min/max/abs/int/float/round may be called")
        return fn(*(_eval(a, env) for a in node.args))
    raise FormulaError(f"{type(node).__name__} is not allowed")


@dataclass(frozen=True)
class Increment:
    """The bantime.increment settings of a jail."""

    enabled: bool = False
    factor: float = 1.0
    formula: str | None = None
    multipliers: tuple[float, ...] = ()
    maxtime: float | None = None
    rndtime: float | None = None
    overalljails: bool = False

    def __post_init__(self) -> None:
        compile_formula(self.formula or DEFAULT_FORMULA)


def ban_duration(
    bantime: float,
    previous_bans: int,
    inc: Increment,
    rnd: Callable[[], float] = random.random,
) -> float:
    """Seconds for this ban; -1 (permanent) stays permanent."""
    if bantime < 0 or not inc.enabled:
        return bantime
    if inc.multipliers:
        seconds = bantime * inc.multipliers[min(previous_bans, len(inc.multipliers) - 1)]
    else:
        tree = compile_formula(inc.formula or DEFAULT_FORMULA)
        env = {"ban.Time": bantime, "ban.Count": previous_bans, "banFactor": inc.factor}
        seconds = float(_eval(tree, env))
    if inc.maxtime is not None and inc.maxtime > 0:
        seconds = min(seconds, inc.maxtime)
    if inc.rndtime:
        seconds += rnd() * inc.rndtime
    return seconds


def parse_multipliers(text: str | Sequence[float]) -> tuple[float, ...]:
    if isinstance(text, str):
        return tuple(float(x) for x in text.split())
    return tuple(float(x) for x in text)
