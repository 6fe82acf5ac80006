"""Typed reads from a decoded JSON object, with the path of whatever is wrong.

A missing or mistyped field is a :class:`FieldError` (a ``ValueError``) naming the full path
(``order.trans[0].amount``); the response parser turns it into a malformed-response error.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from worker.money import Money


class FieldError(ValueError):
    """A field of a gateway body is missing or has the wrong type."""


class Fields:
    """A JSON object and where it sits in the body."""

    __slots__ = ("_data", "path")

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise FieldError(f"{path} must be an object, got {type(data).__name__}")
        self._data: dict[str, Any] = data
        self.path = path

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def _get(self, key: str, required: bool) -> Any:
        if key not in self._data or self._data[key] is None:
            if required:
                raise FieldError(f"{self.path}.{key} is missing")
            return None
        return self._data[key]

    def obj(self, key: str) -> Fields:
        return Fields(self._get(key, True), f"{self.path}.{key}")

    def opt_obj(self, key: str) -> Fields | None:
        value = self._get(key, False)
        return None if value is None else Fields(value, f"{self.path}.{key}")

    def objs(self, key: str) -> list[Fields]:
        value = self._get(key, False)
        if value is None:
            return []
        if not isinstance(value, list):
            raise FieldError(f"{self.path}.{key} must be a list")
        return [Fields(item, f"{self.path}.{key}[{i}]") for i, item in enumerate(value)]

    def strs(self, key: str) -> tuple[str, ...]:
        value = self._get(key, False)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise FieldError(f"{self.path}.{key} must be a list of strings")
        return tuple(value)

    def string(self, key: str) -> str:
        value = self._get(key, True)
        if not isinstance(value, str):
            raise FieldError(f"{self.path}.{key} must be a string")
        return value

    def opt_string(self, key: str) -> str | None:
        return self.string(key) if self.has(key) else None

    def integer(self, key: str) -> int:
        value = self._get(key, True)
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(f"{self.path}.{key} must be an integer")
        return value

    def opt_integer(self, key: str) -> int | None:
        return self.integer(key) if self.has(key) else None

    def int_text(self, key: str) -> int:
        """An integer the gateway sends as a string (``"pmoResultCode": "52"``) or a number."""
        value = self._get(key, True)
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise FieldError(f"{self.path}.{key} must be a whole number")

    def opt_int_text(self, key: str) -> int | None:
        return self.int_text(key) if self.has(key) else None

    def text(self, key: str) -> str:
        """An identifier the gateway may send as a string or a number (``"ridByPmo"``)."""
        value = self._get(key, True)
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise FieldError(f"{self.path}.{key} must be a string or an integer")

    def opt_text(self, key: str) -> str | None:
        return self.text(key) if self.has(key) else None

    def opt_bool(self, key: str) -> bool | None:
        value = self._get(key, False)
        if value is not None and not isinstance(value, bool):
            raise FieldError(f"{self.path}.{key} must be true or false")
        return value

    def money(self, key: str, currency: str) -> Money:
        value = self._get(key, True)
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise FieldError(f"{self.path}.{key} must be a number")
        try:
            return Money.from_gateway(value, currency)
        except ValueError as exc:
            raise FieldError(f"{self.path}.{key}: {exc}") from None

    def opt_money(self, key: str, currency: str) -> Money | None:
        return self.money(key, currency) if self.has(key) else None
