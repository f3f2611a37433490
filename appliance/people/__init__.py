"""People: accounts (teachers, admins, students), classes and rosters, credentials and sign-in throttling.

Shared by the web pages and the ``classroom-edge users`` command, so both apply the same rules.
"""
