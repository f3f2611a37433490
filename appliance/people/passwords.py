"""Password and PIN hashing with argon2id (memory-hard, so a stolen database is slow to crack).

Two parameter sets, on purpose:
- passwords (teachers, admins): OWASP's argon2id baseline (19 MiB, t=2). A few people sign in a day,
  so ~50 ms each is fine even on a Raspberry Pi.
- PINs (children): a 4-digit PIN has only 10 000 values, so no hash makes an offline search slow; what
  protects a PIN is the login throttle. We still never store it in clear, but with a cheaper setting
  (8 MiB, t=1) because a whole class signs in within the same minute.

A semaphore bounds how many hashes run at once: each one holds its memory cost, and the web process
must stay small (issue 2: RSS <= 120 MB) when thirty children press "sign in" together.
"""
from __future__ import annotations

import logging
import re
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask_babel import lazy_gettext as _

from appliance.errors import BadRequest

log = logging.getLogger(__name__)

PASSWORDS = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
PINS = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
_CONCURRENT = threading.BoundedSemaphore(2)

MIN_PASSWORD = 8
PIN_RE = re.compile(r"^[0-9]{4}$")


# The passwords of 8+ characters that lists of leaked passwords show most often (and their Spanish
# cousins): a guesser tries these first, throttled or not.
COMMON_PASSWORDS = frozenset("""
password password1 password12 password123 passw0rd 12345678 123456789 1234567890 12341234 87654321
11111111 00000000 qwertyui qwerty12 qwerty123 qwertyuiop 1q2w3e4r 1qaz2wsx asdfghjk abcd1234 abc12345
iloveyou sunshine princess football baseball superman starwars welcome1 welcome123 admin123 administrator
letmein1 trustno1 whatever computer internet contraseña contrasena contraseña1 12345678910 teacher1 profesor
""".split())


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise BadRequest(_("The password needs at least %(n)s characters.", n=MIN_PASSWORD))
    if password.strip() != password or not password.strip():
        raise BadRequest(_("The password must not start or end with spaces."))
    if password.casefold() in COMMON_PASSWORDS or len(set(password)) == 1:
        raise BadRequest(_("That password is one of the first a guesser tries. Choose another: a few words"
                           " that only you would put together are easy to remember."))


def check_password_hash(stored: str) -> None:
    """Refuse anything but an argon2id hash, so a typo in provisioning cannot lock the admin out."""
    from argon2 import extract_parameters

    if not stored.startswith("$argon2id$"):
        raise BadRequest("That is not an argon2id password hash (it must start with $argon2id$).")
    try:
        extract_parameters(stored)
    except InvalidHashError:
        raise BadRequest("That argon2id password hash is malformed.") from None


def hash_password(password: str) -> str:
    check_password_rules(password)
    with _CONCURRENT:
        return PASSWORDS.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    return _verify(PASSWORDS, stored, password)


def new_pin() -> str:
    """A random 4-digit PIN, avoiding the ones a child (or a guesser) tries first."""
    while True:
        pin = f"{secrets.randbelow(10000):04d}"
        if len(set(pin)) > 1 and pin not in ("1234", "4321", "0123", "9876"):
            return pin


def hash_pin(pin: str) -> str:
    if not PIN_RE.match(pin or ""):
        raise BadRequest(_("A PIN is exactly 4 digits."))
    with _CONCURRENT:
        return PINS.hash(pin)


def verify_pin(stored: str | None, pin: str) -> bool:
    if not PIN_RE.match(pin or ""):
        return False
    return _verify(PINS, stored, pin)


def _verify(hasher: PasswordHasher, stored: str | None, secret: str) -> bool:
    if not stored:
        # Still spend the time of a real check, so a missing account is not told apart by timing.
        with _CONCURRENT:
            try:
                hasher.verify(_DUMMY[hasher is PINS], secret)
            except VerificationError:
                pass
        return False
    with _CONCURRENT:
        try:
            return hasher.verify(stored, secret)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError) as exc:
            log.warning("stored hash could not be checked: %s", exc)
            return False


# Hashes of random secrets nobody knows, computed lazily (no import-time work).
class _Dummies(dict):
    def __missing__(self, is_pin: bool) -> str:
        hasher = PINS if is_pin else PASSWORDS
        value = hasher.hash(secrets.token_hex(8))
        self[is_pin] = value
        return value


_DUMMY = _Dummies()
