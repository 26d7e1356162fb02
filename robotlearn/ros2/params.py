"""Typed ROS 2 node parameters, declared from data, with one-line errors.

Each node module lists its parameters as `Param`s (``PARAMETERS``), so the launch-file test can check, without
ROS, that every parameter a launch file passes is one the node declares. `declare` turns them into declared
parameters with a type, a description and a range (visible in ``ros2 param describe``), and reads them back;
a wrong type, a value out of range, or a parameter the node does not have (a typo in a launch file or YAML)
is a `ParameterError` with one line naming it, which `run_node` prints before exiting with status 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ParameterError(ValueError):
    """A bad node parameter; the message is one line."""


@dataclass(frozen=True)
class Param:
    """One declared parameter. `default` fixes the type (bool, int, float, str, list[str]); `low`/`high`
    bound numbers (inclusive); `choices` restricts strings; `required` strings may not stay empty."""

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False


def _descriptor(p: Param):
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    types = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
             list: ParameterType.PARAMETER_STRING_ARRAY}
    text = p.description + (f" (one of: {', '.join(p.choices)})" if p.choices else "")
    desc = ParameterDescriptor(name=p.name, type=types[type(p.default)], description=text, read_only=True)
    if type(p.default) is float and (p.low is not None or p.high is not None):
        desc.floating_point_range = [FloatingPointRange(from_value=float(p.low if p.low is not None else -1e300),
                                                        to_value=float(p.high if p.high is not None else 1e300))]
    elif type(p.default) is int and (p.low is not None or p.high is not None):
        desc.integer_range = [IntegerRange(from_value=int(p.low if p.low is not None else -(2**62)),
                                           to_value=int(p.high if p.high is not None else 2**62), step=1)]
    return desc


def declare(node, params: tuple[Param, ...]) -> dict[str, Any]:
    """Declare `params` on `node` and return their values; raises ParameterError (one line)."""
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    known = {p.name for p in params}
    # rclpy keeps overrides for undeclared names silently; a typo would otherwise do nothing at all.
    unknown = sorted(set(node._parameter_overrides) - known - {"use_sim_time"})
    if unknown:
        raise ParameterError(f"{node.get_name()}: unknown parameter {unknown[0]!r}; known: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for p in params:
        try:
            value = node.declare_parameter(p.name, p.default, _descriptor(p)).value
        except InvalidParameterTypeException as err:
            raise ParameterError(f"{node.get_name()}: parameter {p.name!r} must be a {type(p.default).__name__} "
                                 f"({err.__class__.__name__})") from None
        except InvalidParameterValueException:
            raise ParameterError(f"{node.get_name()}: parameter {p.name!r} out of range "
                                 f"[{p.low}, {p.high}]") from None
        if type(p.default) is float and isinstance(value, int):
            value = float(value)
        if p.choices and value not in p.choices:
            raise ParameterError(f"{node.get_name()}: parameter {p.name!r} is {value!r}; one of: {', '.join(p.choices)}")
        if p.required and not value:
            raise ParameterError(f"{node.get_name()}: parameter {p.name!r} is required ({p.description})")
        values[p.name] = list(value) if isinstance(value, (list, tuple)) else value
    return values
