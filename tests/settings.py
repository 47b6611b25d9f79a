"""Settings for the test suite: the production module, fed test values through the environment.

Values go through os.environ (not assignments) so that subprocesses the tests start (runpinger, rqworker,
the simulator) read the same configuration. Anything already set in the environment wins.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-" + "k" * 30)
# A fixed, test-only Fernet key; production keys come from FIELD_ENCRYPTION_KEY(_FILE).
os.environ.setdefault("FIELD_ENCRYPTION_KEY", "MHJXjwjtCfaQpZLg0T1ulGUo4YnJAINTAP-FiaxjrDs=")
os.environ.setdefault("HTTPS", "0")
# The Redis server of the tests (host:port); a developer running two suites at once gives each its own.
os.environ.setdefault("TEST_REDIS", "127.0.0.1:6379")
os.environ.setdefault("REDIS_URL", f"redis://{os.environ['TEST_REDIS']}/15")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
# The simulator and every test gateway listen on loopback, which production refuses as a gateway address
# (loggerapp/eagle/addresses.py); the tests of that refusal set EAGLE_ALLOWED_NETWORKS back to empty.
os.environ.setdefault("EAGLE_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")

from iseif.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests
WHITENOISE_AUTOREFRESH = True  # serve from the finders; tests never run collectstatic
WHITENOISE_USE_FINDERS = True
