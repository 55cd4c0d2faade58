"""Notices to approvers: e-mail over SMTP, Slack and Teams webhooks, with signed deep links.

`config` is the `notifications:` section of `approvers.yaml`; `links` signs and checks
deep links; `plan` decides, without I/O, who is told what; `render` words the messages;
`senders` does the I/O; `notifier` runs them in the API process. Nothing here runs in
workflow code, and nothing here can block or fail an approval.
"""

__all__: list[str] = []
