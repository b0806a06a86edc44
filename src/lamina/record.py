"""`@record`: frozen value classes for the types every command touches.

What `@dataclass(frozen=True)` gives (an `__init__` over the annotated fields with
their defaults, `__post_init__`, equality, hashing, `repr`, optional ordering,
immutability), without importing `dataclasses`: that module pulls in `inspect`,
`ast`, `re` and more, and costs a read verb (`lamina images`, `inspect`) more
start-up time than docker's whole command takes.  Fields are read from the
class's annotations in order; no `field()`, no `replace()` — use a dataclass
where those are needed, off the start-up path.
"""

from __future__ import annotations


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a record (dataclasses' error of the same name)."""


def record(cls=None, /, *, order: bool = False):
    """Class decorator: `@record` or `@record(order=True)`."""
    if cls is None:
        return lambda c: _make(c, order)
    return _make(cls, order)


def _make(cls, order: bool):
    names = tuple(cls.__dict__.get("__annotations__", {}))
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    post_init = getattr(cls, "__post_init__", None)
    qualname = cls.__qualname__

    def __init__(self, *args, **kwargs) -> None:
        if kwargs or len(args) != len(names):  # every field given in order (diff's thousands of Changes): no checks
            if len(args) > len(names):
                raise TypeError(f"{qualname}() takes {len(names)} arguments but {len(args)} were given")
            values = dict(zip(names, args))
            for k, v in kwargs.items():
                if k not in names or k in values:
                    raise TypeError(f"{qualname}() got an unexpected or repeated argument {k!r}")
                values[k] = v
            for n in names:
                if n not in values:
                    if n not in defaults:
                        raise TypeError(f"{qualname}() missing required argument: {n!r}")
                    values[n] = defaults[n]
            self.__dict__.update(values)
        else:
            self.__dict__.update(zip(names, args))
        if post_init is not None:
            post_init(self)

    def _key(self) -> tuple:
        d = self.__dict__
        return tuple(d[n] for n in names)

    def __eq__(self, other) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return _key(self) == _key(other)

    def __hash__(self) -> int:
        return hash(_key(self))

    def __repr__(self) -> str:
        d = self.__dict__
        return f"{qualname}(" + ", ".join(f"{n}={d[n]!r}" for n in names) + ")"

    def __setattr__(self, name: str, value) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    methods = {"__init__": __init__, "__eq__": __eq__, "__hash__": __hash__, "__repr__": __repr__,
               "__setattr__": __setattr__, "__delattr__": __delattr__, "__match_args__": names}
    if order:
        def compare(op):
            def method(self, other):
                if other.__class__ is not self.__class__:
                    return NotImplemented
                return op(_key(self), _key(other))
            return method

        methods.update(__lt__=compare(tuple.__lt__), __le__=compare(tuple.__le__),
                       __gt__=compare(tuple.__gt__), __ge__=compare(tuple.__ge__))
    for name, fn in methods.items():
        if name not in cls.__dict__ or name in ("__init__", "__setattr__", "__delattr__"):
            if callable(fn):
                fn.__qualname__ = f"{qualname}.{name}"
            setattr(cls, name, fn)
    return cls
