"""Notifications: alerts sent to people and systems where they already look.

    alerts ──route──▶ outbox ──group, cap──▶ channel ──▶ syslog, mail, webhook, command

:mod:`message` turns one alert or a group into a :class:`~message.Message`; :mod:`formats`
writes it for syslog (RFC 5424 with a plain, JSON or CEF body); :mod:`grouping` decides what
goes out now, grouped or alone, and what waits; :mod:`channels` delivers; :mod:`dispatcher`
ties them to the store. Everything but the channels and the dispatcher is free of I/O.
"""
