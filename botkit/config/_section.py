"""The rules every bots.yaml section follows: one pydantic model per section.

Every section refuses unknown keys (they are nearly always typos of known ones), is immutable once
loaded, and never prints its input in pydantic's own error text (the input may be a secret). Each
field's ``description`` is a noun phrase that completes "expected ...", and the error translation
uses it. A new section (``state:``, per-bot ``schedules:``) is a new ``Section`` subclass and one
field on its parent; cross-field checks live in validators next to the fields they concern.
Relative paths resolve against ``base_dir`` in the validation context (the config file's folder).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
