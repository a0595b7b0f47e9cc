"""Wire shapes of a member's settings (SelfCommunity's UserSettings)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

Frequency = Annotated[int, Field(ge=-1, le=1, description="-1 at once, 1 daily, 0 never.")]
Flag = Annotated[int, Field(ge=0, le=1, description="1 on, 0 off.")]


class UserSettingsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    qa_frequency: Frequency = Field(description="E-mail about interactions: -1, 1 or 0.")
    email_notification_not_qa: Flag = Field(description="Private messages by e-mail too.")
    mobile_notifications_scmty: Flag = Field(description="Push notifications to the app.")
    show_toast_notifications: Flag = Field(description="Pop-ups in the page.")
    toast_notifications_emit_sound: Flag = Field(description="A sound with the pop-ups.")


DEFAULTS = UserSettingsOut(
    qa_frequency=1,
    email_notification_not_qa=1,
    mobile_notifications_scmty=1,
    show_toast_notifications=1,
    toast_notifications_emit_sound=1,
)


def _no_bool(value: Any) -> Any:
    """JSON's true/false are not the numbers 1 and 0 here (forms send digits as text)."""
    if isinstance(value, bool):
        raise ValueError("Not a valid integer.")
    return value


# In a change, a setting left out (or null) keeps its value: documented as integer or null.
FrequencyChange = Annotated[
    Frequency | None,
    BeforeValidator(_no_bool),
    WithJsonSchema(
        {"type": ["integer", "null"], "enum": [-1, 0, 1, None], "description": "-1, 1 or 0."}
    ),
]
FlagChange = Annotated[
    Flag | None,
    BeforeValidator(_no_bool),
    WithJsonSchema(
        {"type": ["integer", "null"], "enum": [0, 1, None], "description": "1 on, 0 off."}
    ),
]


class UserSettingsPatchIn(BaseModel):
    """Any of the settings; the ones left out keep their values."""

    model_config = ConfigDict(extra="forbid")

    qa_frequency: FrequencyChange = None
    email_notification_not_qa: FlagChange = None
    mobile_notifications_scmty: FlagChange = None
    show_toast_notifications: FlagChange = None
    toast_notifications_emit_sound: FlagChange = None
