"""The base of the client's objects: an Engine API document as `.attrs`, as docker-py's models."""

from __future__ import annotations


class Model:
    """An object with the Engine API's document as `.attrs`, like docker-py's models."""

    def __init__(self, client, attrs: dict) -> None:
        self.client = client
        self.attrs = attrs

    @property
    def id(self) -> str:
        return self.attrs["Id"]

    def __eq__(self, other) -> bool:
        return isinstance(other, self.__class__) and self.id == other.id

    def __hash__(self) -> int:
        return hash(f"{self.__class__.__name__}:{self.id}")

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}: {self.short_id}>"
