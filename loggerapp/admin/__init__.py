"""The researchers' admin, one module per job; importing the package registers everything with the admin site.

- households.py: households (write-only password, status at the top, "test connection now"), their statistics
- ledger.py: the upload ledger (read-only), the per-household hour strip
- tokens.py: API tokens (shown once, revoked by action)
- queues.py: django-rq's dashboard behind its own permission
- login.py: the admin sign-in, rate limited in Redis
"""

from loggerapp.admin import households, ledger, login, queues, tokens  # noqa: F401  (each registers itself)
