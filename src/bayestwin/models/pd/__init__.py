"""Drug-effect (PD) models linked to PK models; importing registers the built-in combinations.

``linked_pd(pk, effect, link=...)`` builds (and registers) any combination; the built-in ones are listed in
``bayestwin.models.pd.builtins``.
"""

from bayestwin.models.pd import builtins  # noqa: F401
from bayestwin.models.pd.linked import EFFECTS, LINKS, PK_ODE_FORMS, linked_pd

__all__ = ["EFFECTS", "LINKS", "PK_ODE_FORMS", "linked_pd"]
