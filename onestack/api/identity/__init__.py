"""Identity v3 (Keystone) routes, served at the root of the API."""

from onestack.api import versions
from onestack.api.identity import (
    app_creds,
    assignments,
    auth,
    catalog,
    credentials,
    domains,
    groups,
    oauth1,
    policies,
    projects,
    roles,
    trusts,
    users,
)

routes = [
    *versions.routes,
    *auth.routes,
    *domains.routes,
    *projects.routes,
    *users.routes,
    *groups.routes,
    *roles.routes,
    *assignments.routes,
    *catalog.routes,
    *app_creds.routes,
    *credentials.routes,
    *policies.routes,
    *oauth1.routes,
    *trusts.routes,
]
