"""A message of a case chat (``ChatDto``), its author and who wrote it."""

from __future__ import annotations

import enum

from airflow_provider_debitura.models.base import ApiModel, UtcDateTime


class ChatRole(enum.IntEnum):
    """``ChatDto.role``: who wrote a message (the spec's enum 0, 1, 2; other values parse as plain ints)."""

    PARTNER = 0
    CREDITOR = 1
    MANAGED_BY_PARTNER = 2


class ChatUser(ApiModel):
    """``UserRelationDto``: the author of a chat message."""

    id: int | str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    date_created: UtcDateTime | None = None
    date_updated: UtcDateTime | None = None


class ChatMessage(ApiModel):
    """``ChatDto``: one message of a case chat. ``role`` is an int; unknown values parse."""

    id: str
    date_created: UtcDateTime
    date_updated: UtcDateTime | None = None
    role: int | None = None
    role_label: str | None = None
    message: str | None = None
    is_seen: bool | None = None
    user: ChatUser | None = None

    @property
    def is_from_creditor(self) -> bool:
        """Written by the creditor (role 1): that is, through this API or the Creditor app."""
        return self.role == ChatRole.CREDITOR

    @property
    def is_from_partner(self) -> bool:
        """Written by the collection partner (role 0) or managed by the partner (role 2)."""
        return self.role in (ChatRole.PARTNER, ChatRole.MANAGED_BY_PARTNER)
