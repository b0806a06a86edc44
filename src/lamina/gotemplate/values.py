"""Go values in Python and how Go's fmt prints them.

The data a template walks is plain Python: dict (a Go map), list (a slice),
str, int, float, bool, None (nil) — what JSON decoding gives — plus `GoStruct`
for docker's formatter contexts (fields and methods, an error for unknown names)
and `GoMap`, a dict known to be a typed Go map (absent keys are `<no value>` even
where absent keys of other maps are errors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping  # not typing: on the listing verbs' start-up path


class _Missing:
    """Go's invalid reflect.Value: what a map gives for an absent key."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


class _Omitted:
    """A nil pointer field that JSON omits (`omitempty`): a struct prints it as
    `<nil>`, `json` leaves it out, a template reading it gets nil."""

    def __repr__(self) -> str:
        return "<nil>"


OMITTED = _Omitted()


class SafeText(str):
    """Text already made safe to show (the `json` function's output, whose controls
    are escaped JSON's way): print escapers leave it alone."""


class JSONNumber(str):
    """encoding/json's Number (a number decoded with UseNumber): a string type that
    prints as its text and marshals as a number."""


class GoMap(dict):
    """A typed Go map such as `map[string]string` (labels): absent keys give `<no value>`,
    and `index` of an absent key gives `zero`."""

    zero: object = ""
    methods: Mapping[str, object] = {}  # a named map type's methods (docker's header context)


class NilMap(GoMap):
    """A nil Go map: prints `map[]`, marshals as null."""


class NilSlice(list):
    """A nil Go slice: prints `[]`, marshals as null."""


class StructDict(dict):
    """A JSON object that stands for a Go struct (docker's typed inspect objects):
    fields are looked up as in a map, but it prints as Go prints a struct, `{a b}`
    (templates print a pointer's struct the same).  `go_names` maps a Go field name to its JSON
    key where they differ (`ID` -> `Id`): templates see only the Go name.

    With a `type_name` it is a struct of known Go type (docker's `version`/`info`
    structs): an absent field is Go's "can't evaluate field X in type T", not a map's
    missing key (inspect's structs have none: docker re-runs a failing template on the
    decoded JSON, so their errors are a map's).  `omitempty` names the fields `json`
    leaves out when empty; templates still read them (Go's tag is for marshalling only)."""

    go_names: Mapping[str, str] = {}
    type_name: str = ""
    omitempty: frozenset = frozenset()

    def field_key(self, name: str):
        """The key holding Go field `name`, or None if the struct has no such field."""
        key = self.go_names.get(name, name)
        if key not in self or (key == name and name in self.go_names.values()):
            return None
        return key


class GoStruct:
    """A Go struct (or pointer to one) with exported fields and methods.

    `fields` are printed in order as `{a b}` and are what `json` marshals unless
    `json_value` is given (docker's contexts marshal their method results);
    `fields_are_methods` words argument errors as for methods without parameters."""

    def __init__(self, type_name: str, fields: Mapping[str, object] | None = None,
                 methods: Mapping[str, Callable] | None = None, json_value: object = None,
                 fields_are_methods: bool = False):
        self.type_name = type_name
        self.fields_are_methods = fields_are_methods  # docker's contexts: each field is a method
        self.fields = dict(fields or {})
        self.methods = dict(methods or {})
        self.json_value = json_value

    def to_json(self):
        return self.fields if self.json_value is None else self.json_value


def type_name(v) -> str:
    """The Go type of a value, as errors and %T name it."""
    if isinstance(v, GoStruct) or (isinstance(v, StructDict) and v.type_name):
        return v.type_name
    if v is None:
        return "<nil>"
    if isinstance(v, JSONNumber):
        return "json.Number"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, GoMap):
        return "map[string]string"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"  # decoded JSON; docker's typed []string fields are not told apart
    if callable(v):
        return "func"
    return type(v).__name__


def truth(v) -> bool:
    """Go's template truth: false, 0, nil, empty string/slice/map and no value are false."""
    if v is MISSING or v is None:
        return False
    if isinstance(v, GoStruct):
        return True
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


def sprint_value(v) -> str:
    """fmt's %v."""
    if isinstance(v, str):
        return v
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float_v(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(sprint_value(x) for x in v) + "]"
    if isinstance(v, StructDict):
        return "{" + " ".join(sprint_value(x) for x in v.values()) + "}"
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{sprint_value(k)}:{sprint_value(v[k])}" for k in sort_keys(v)) + "]"
    if isinstance(v, GoStruct):
        return "{" + " ".join(sprint_value(x) for x in v.fields.values()) + "}"
    if v is MISSING:
        return "<invalid reflect.Value>"
    if v is OMITTED:
        return "<nil>"
    return str(v)


def sort_keys(m: Mapping) -> list:
    """fmt's map order: numbers numerically, strings bytewise (code points are the same order)."""
    try:
        return sorted(m)
    except TypeError:
        return sorted(m, key=lambda k: (type(k).__name__, str(k)))


def format_float_v(f: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64), fmt's %v and %g: the shortest digits that
    read back, in %e form when the exponent is < -4 or >= 6 (Go's rule for shortest)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    sign = "-" if f < 0 else ""
    digits, dp = _digits_of(repr(abs(f)))
    exp10 = dp - 1
    if exp10 < -4 or exp10 >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def _digits_of(r: str) -> tuple[str, int]:
    """Decimal digits (no leading/trailing zeros) and decimal-point position of repr()."""
    mant, _, exp = r.partition("e")
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    lead = len(whole + frac) - len((whole + frac).lstrip("0"))
    dp = len(whole) - lead + (int(exp) if exp else 0)
    return digits.rstrip("0") or "0", dp
