"""The domain of family visits: prisons, schedules, slots, inmates, visitors and bookings.

This package knows nothing of HTTP or SMS providers; ``web`` calls into it and it calls into
``notifications``.
"""
