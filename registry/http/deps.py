"""What handlers declare as parameters instead of reaching through the request for it.

Registered once on the app (``DEPENDENCIES``), so any handler may name

* ``services: AppServices``, the process's services (``registry.services``);
* ``caller: NamedDependency[Client]``, the client the ``allow`` guard authenticated (only
  under that guard);
* ``payload: NamedDependency[T]``, the body read strictly (``registry.http.body``) as the
  route's declared ``opt["body"]`` type, within the JSON size and depth limits.

``NamedDependency`` marks them as injected by name (Litestar 2.23 deprecates inferring that).
None of them is a request parameter, so none appears in the OpenAPI document. Guards run
before dependencies are resolved, and exception handlers outside them; both reach the services
through ``app_services``, the one place that reads them off the application.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from litestar import Request  # noqa: TC002 - Litestar reads providers' annotations at runtime
from litestar.connection import ASGIConnection  # noqa: TC002 - see above
from litestar.datastructures import State  # noqa: TC002 - see above
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation

from registry.core.auth import Client  # noqa: TC001 - see above
from registry.http.body import read_json
from registry.services import Services

AppServices: TypeAlias = NamedDependency[SkipValidation[Services]]
"""A handler's ``services`` parameter: not a msgspec type, so Litestar does not validate it."""


def app_services(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    """The services, for guards and exception handlers: they run outside dependency injection."""
    services: Services = connection.app.state.services
    return services


async def read_payload(request: Request[Any, Any, Any], services: AppServices) -> Any:
    """The body as the route's ``opt["body"]`` type, for handlers that read it conditionally."""
    return await read_json(
        request,
        request.route_handler.opt["body"],
        max_bytes=services.settings.max_json_bytes,
        max_depth=services.settings.max_json_depth,
    )


def _services(state: State) -> Services:
    services: Services = state.services
    return services


def _caller(request: Request[Any, Any, Any]) -> Client:
    client: Client = request.state.client
    return client


# Cheap reads of state: run them inline rather than in a worker thread.
DEPENDENCIES: dict[str, Provide] = {
    "services": Provide(_services, sync_to_thread=False),
    "caller": Provide(_caller, sync_to_thread=False),
    "payload": Provide(read_payload),
}
