"""The chat webhooks' documented message shapes, as JSON Schemas the loopback receivers check.

Slack: an incoming webhook takes `text` (the notification fallback) and `blocks`, at most
50 (Block Kit reference, "Blocks" and "Block elements"): a `header` holds `plain_text` of
at most 150 characters; a `section` a text object of at most 3,000 and an optional
accessory; a `button` a `plain_text` label of at most 75, a `url` of at most 3,000 and an
`action_id` of at most 255; a `context` at most 10 elements; a `divider` nothing else.
Slack answers `400 invalid_blocks` to anything else.

Teams: an incoming webhook (or a Workflows "post to a channel when a webhook request is
received" URL) takes `{"type": "message", "attachments": [...]}` with one attachment of
`contentType` `application/vnd.microsoft.card.adaptive` whose `content` is an Adaptive
Card (`type` `AdaptiveCard`, `version`, `body` of elements); `TextBlock` needs `text`,
`ActionSet` needs `actions`, `Action.OpenUrl` needs `url` (adaptivecards.io schema 1.4).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SLACK_MESSAGE", "TEAMS_MESSAGE"]

_PLAIN: dict[str, Any] = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "plain_text"}, "text": {"type": "string", "minLength": 1}},
}
_TEXT: dict[str, Any] = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {
        "type": {"enum": ["plain_text", "mrkdwn"]},
        "text": {"type": "string", "minLength": 1, "maxLength": 3000},
    },
}
_BUTTON: dict[str, Any] = {
    "type": "object",
    "required": ["type", "text"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "button"},
        "text": {
            **_PLAIN,
            "properties": {**_PLAIN["properties"], "text": {"type": "string", "maxLength": 75}},
        },
        "url": {"type": "string", "format": "uri", "maxLength": 3000},
        "action_id": {"type": "string", "maxLength": 255},
        "value": {"type": "string", "maxLength": 2000},
        "style": {"enum": ["primary", "danger"]},
    },
}
SLACK_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "minLength": 1},
        "blocks": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["type", "text"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "header"},
                            "text": {
                                **_PLAIN,
                                "properties": {
                                    **_PLAIN["properties"],
                                    "text": {"type": "string", "maxLength": 150},
                                },
                            },
                            "block_id": {"type": "string"},
                        },
                    },
                    {
                        "type": "object",
                        "required": ["type"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "section"},
                            "text": _TEXT,
                            "accessory": _BUTTON,
                            "block_id": {"type": "string"},
                        },
                    },
                    {
                        "type": "object",
                        "required": ["type"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "divider"},
                            "block_id": {"type": "string"},
                        },
                    },
                    {
                        "type": "object",
                        "required": ["type", "elements"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "context"},
                            "elements": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 10,
                                "items": _TEXT,
                            },
                            "block_id": {"type": "string"},
                        },
                    },
                ]
            },
        },
    },
}

_TEXT_BLOCK: dict[str, Any] = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {
        "type": {"const": "TextBlock"},
        "text": {"type": "string", "minLength": 1},
        "weight": {"enum": ["Default", "Lighter", "Bolder"]},
        "size": {"enum": ["Default", "Small", "Medium", "Large", "ExtraLarge"]},
        "spacing": {
            "enum": ["None", "Small", "Default", "Medium", "Large", "ExtraLarge", "Padding"]
        },
        "wrap": {"type": "boolean"},
        "isSubtle": {"type": "boolean"},
        "separator": {"type": "boolean"},
    },
    "additionalProperties": False,
}
_OPEN_URL: dict[str, Any] = {
    "type": "object",
    "required": ["type", "url"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "Action.OpenUrl"},
        "title": {"type": "string"},
        "url": {"type": "string", "format": "uri"},
    },
}
TEAMS_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["type", "attachments"],
    "properties": {
        "type": {"const": "message"},
        "attachments": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["contentType", "content"],
                "properties": {
                    "contentType": {"const": "application/vnd.microsoft.card.adaptive"},
                    "contentUrl": {"type": ["string", "null"]},
                    "content": {
                        "type": "object",
                        "required": ["type", "version", "body"],
                        "properties": {
                            "$schema": {"type": "string"},
                            "type": {"const": "AdaptiveCard"},
                            "version": {"type": "string", "pattern": r"^1\.[0-6]$"},
                            "body": {
                                "type": "array",
                                "items": {
                                    "oneOf": [
                                        _TEXT_BLOCK,
                                        {
                                            "type": "object",
                                            "required": ["type", "actions"],
                                            "additionalProperties": False,
                                            "properties": {
                                                "type": {"const": "ActionSet"},
                                                "actions": {
                                                    "type": "array",
                                                    "minItems": 1,
                                                    "items": _OPEN_URL,
                                                },
                                            },
                                        },
                                    ]
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
