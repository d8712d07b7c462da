"""The SMS channel: outbox, senders, dispatcher, delivery status and opt-outs.

It imports nothing from ``visits`` or ``web``. The channel itself is built by the SMS issue;
until then the booking core queues nothing and this package holds no code.
"""
