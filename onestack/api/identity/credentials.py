"""/v3/credentials and the EC2 extension, /v3/users/{user_id}/credentials/OS-EC2"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import body_part, caller, json_response, no_content, parse, read_json
from onestack.api.identity.common import Text, identity, list_links, self_link
from onestack.common.errors import InvalidField
from onestack.db.models.identity import Credential
from onestack.services.identity.credentials import ec2_blob

FIELD = "credential"
_FIELDS = ("user_id", "project_id", "type", "blob")


class CredentialCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    user_id: Text = Field(min_length=1, max_length=64)
    type: Text = Field(min_length=1, max_length=255)
    blob: Text
    project_id: Text | None = Field(default=None, max_length=64)


class CredentialUpdate(BaseModel):
    model_config = ConfigDict(extra="allow")
    user_id: Text | None = Field(default=None, min_length=1, max_length=64)
    type: Text | None = Field(default=None, min_length=1, max_length=255)
    blob: Text | None = None
    project_id: Text | None = Field(default=None, max_length=64)


def _extra(model: BaseModel) -> dict[str, Any]:
    extra = dict(model.model_extra or {})
    if "id" in extra:
        raise InvalidField(f"{FIELD}/id", "is read-only")
    return extra


def render_credential(request: Request, cred: Credential) -> dict[str, Any]:
    return {**(cred.extra or {}), "id": cred.id, "user_id": cred.user_id,
            "project_id": cred.project_id, "type": cred.type, "blob": cred.blob,
            "links": self_link(request, f"credentials/{cred.id}")}


async def create_credential(request: Request) -> Response:
    ctx = caller(request)
    service = identity(request).credentials
    raw = body_part(await read_json(request), FIELD)
    service.authorize_create(ctx, raw.get("user_id"))  # a 403 before the 400s
    body = parse(CredentialCreate, raw, FIELD)
    cred = service.create(ctx, user_id=body.user_id, type_=body.type, blob=body.blob,
                          project_id=body.project_id, extra=_extra(body))
    return json_response({FIELD: render_credential(request, cred)}, status=201)


async def list_credentials(request: Request) -> Response:
    q = request.query_params
    creds = identity(request).credentials.list_credentials(
        caller(request), user_id=q.get("user_id"), type_=q.get("type"))
    return json_response({"credentials": [render_credential(request, c) for c in creds],
                          "links": list_links(request)})


async def get_credential(request: Request) -> Response:
    cred = identity(request).credentials.get(caller(request),
                                             request.path_params["credential_id"])
    return json_response({FIELD: render_credential(request, cred)})


async def update_credential(request: Request) -> Response:
    ctx = caller(request)
    # another user's credential is a 404 whatever the body holds
    identity(request).credentials.get(ctx, request.path_params["credential_id"])
    body = parse(CredentialUpdate, body_part(await read_json(request), FIELD), FIELD)
    changes: dict[str, Any] = {k: v for k, v in body.model_dump(include=set(_FIELDS)).items()
                               if k in body.model_fields_set}
    for name in ("user_id", "type", "blob"):
        if name in changes and changes[name] is None:
            raise InvalidField(f"{FIELD}/{name}", "must not be null")
    changes["extra"] = _extra(body)
    cred = identity(request).credentials.update(ctx, request.path_params["credential_id"],
                                                changes)
    return json_response({FIELD: render_credential(request, cred)})


async def delete_credential(request: Request) -> Response:
    identity(request).credentials.delete(caller(request),
                                         request.path_params["credential_id"])
    return no_content()


# -- OS-EC2 -------------------------------------------------------------------------


def render_ec2(request: Request, cred: Credential) -> dict[str, Any]:
    blob = ec2_blob(cred)
    access = blob.get("access")
    return {"user_id": cred.user_id, "tenant_id": cred.project_id, "access": access,
            "secret": blob.get("secret"), "trust_id": blob.get("trust_id"),
            "links": self_link(request, f"users/{cred.user_id}/credentials/OS-EC2/{access}")}


class Ec2Create(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: Text = Field(min_length=1, max_length=64)


async def ec2_create(request: Request) -> Response:
    ctx = caller(request)
    user_id = request.path_params["user_id"]
    service = identity(request).credentials
    service.authorize_ec2(ctx, user_id)
    body = parse(Ec2Create, await read_json(request), "body")
    cred, _ = service.ec2_create(ctx, user_id, body.tenant_id)
    return json_response({FIELD: render_ec2(request, cred)}, status=201)


async def ec2_list(request: Request) -> Response:
    creds = identity(request).credentials.ec2_list(caller(request),
                                                   request.path_params["user_id"])
    return json_response({"credentials": [render_ec2(request, c) for c in creds],
                          "links": list_links(request)})


async def ec2_get(request: Request) -> Response:
    p = request.path_params
    cred = identity(request).credentials.ec2_get(caller(request), p["user_id"], p["access"])
    return json_response({FIELD: render_ec2(request, cred)})


async def ec2_delete(request: Request) -> Response:
    p = request.path_params
    identity(request).credentials.ec2_delete(caller(request), p["user_id"], p["access"])
    return no_content()


routes = [
    Route("/v3/credentials", create_credential, methods=["POST"]),
    Route("/v3/credentials", list_credentials, methods=["GET"]),
    Route("/v3/credentials/{credential_id}", get_credential, methods=["GET"]),
    Route("/v3/credentials/{credential_id}", update_credential, methods=["PATCH"]),
    Route("/v3/credentials/{credential_id}", delete_credential, methods=["DELETE"]),
    Route("/v3/users/{user_id}/credentials/OS-EC2", ec2_create, methods=["POST"]),
    Route("/v3/users/{user_id}/credentials/OS-EC2", ec2_list, methods=["GET"]),
    Route("/v3/users/{user_id}/credentials/OS-EC2/{access}", ec2_get, methods=["GET"]),
    Route("/v3/users/{user_id}/credentials/OS-EC2/{access}", ec2_delete,
          methods=["DELETE"]),
]
