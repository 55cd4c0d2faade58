"""Answers cut off at the output limit: the step's failure, or the continued answer.

An endpoint that stops at `max_tokens` still answers 200 with `finish_reason: length`
(Anthropic: `stop_reason: max_tokens`). Taken as final, half an answer becomes the step's
output; a cut tool call becomes a tool error the model cannot fix. The step's
`on_truncation` decides: `fail` (the default) ends the step with a message naming the
deployment and the limit; `continue` keeps the cut text in the conversation and asks the
model to go on, and the step's answer is the pieces joined. Pure, for the workflow.
"""

from __future__ import annotations

from orchestrator.providers.messages import ChatMessage
from orchestrator.session.types import ModelCallResult

__all__ = ["CONTINUE_PROMPT", "joined_answer", "truncation_failure"]

CONTINUE_PROMPT = (
    "Your answer was cut off at the output limit. Continue exactly where it stopped,"
    " without repeating anything."
)


def truncation_failure(
    step_id: str, model: str, result: ModelCallResult, *, continuable: bool = True
) -> str:
    """Why the step fails: which deployment, which limit, and what to change."""
    limit = (
        f"max_tokens={result.max_tokens}"
        if result.max_tokens is not None
        else "the endpoint's own output limit"
    )
    what = "a tool call" if result.response.message.tool_calls else "the answer"
    return (
        f"step {step_id!r}: {what} of {model!r} (model {result.deployment!r}) was cut off at"
        f" {limit} (finish reason {result.response.finish_reason!r}); raise max_tokens on the"
        " step or the deployment in models.yaml"
        + (
            ", or set on_truncation: continue"
            if continuable and not result.response.message.tool_calls
            else ""
        )
    )


def joined_answer(messages: list[ChatMessage]) -> str:
    """The final answer with the cut pieces before it that `continue` asked to go on from.

    Read from the conversation itself, so it survives a continue-as-new between the pieces.
    """
    pieces = [messages[-1].content or ""]
    index = len(messages) - 1
    while index >= 2:
        prompt, cut = messages[index - 1], messages[index - 2]
        if prompt.role != "user" or prompt.content != CONTINUE_PROMPT:
            break
        if cut.role != "assistant" or cut.tool_calls:
            break
        pieces.append(cut.content or "")
        index -= 2
    return "".join(reversed(pieces))
