"""``GET /compute/v2.1/extensions[/{alias}]``: Nova's legacy extension list.

Nova deprecated extensions when v2.1 made the API one versioned whole, yet still
answers the list: a fixed set of entries (name, alias, empty links, one namespace and
date for all) that says nothing about what a deployment enables. OneStack answers the
same fixed list, for clients (Tempest among them) that still read it; what OneStack
implements is stated by its microversion range and docs/compute.md.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import json_response
from onestack.api.compute.policy import reader
from onestack.common.errors import NotFound

UPDATED = "2014-12-03T00:00:00Z"
NAMESPACE = "http://docs.openstack.org/compute/ext/fake_xml"

#: (name, alias) as Nova lists them.
EXTENSIONS: tuple[tuple[str, str], ...] = (
    ("AccessIPs", "os-access-ips"), ("AdminActions", "os-admin-actions"),
    ("AdminPassword", "os-admin-password"), ("Agents", "os-agents"),
    ("Aggregates", "os-aggregates"),
    ("AssistedVolumeSnapshots", "os-assisted-volume-snapshots"),
    ("AttachInterfaces", "os-attach-interfaces"),
    ("AvailabilityZone", "os-availability-zone"),
    ("BareMetalNodes", "os-baremetal-nodes"),
    ("BlockDeviceMapping", "os-block-device-mapping"), ("Cells", "os-cells"),
    ("Certificates", "os-certificates"), ("Cloudpipe", "os-cloudpipe"),
    ("CloudpipeUpdate", "os-cloudpipe-update"), ("ConfigDrive", "os-config-drive"),
    ("ConsoleAuthTokens", "os-console-auth-tokens"),
    ("ConsoleOutput", "os-console-output"), ("Consoles", "os-consoles"),
    ("CreateBackup", "os-create-backup"), ("DeferredDelete", "os-deferred-delete"),
    ("DiskConfig", "OS-DCF"), ("Evacuate", "os-evacuate"),
    ("ExtendedAvailabilityZone", "OS-EXT-AZ"), ("ExtendedIps", "OS-EXT-IPS"),
    ("ExtendedIpsMac", "OS-EXT-IPS-MAC"), ("ExtendedServerAttributes", "OS-EXT-SRV-ATTR"),
    ("ExtendedStatus", "OS-EXT-STS"), ("ExtendedVolumes", "os-extended-volumes"),
    ("FixedIPs", "os-fixed-ips"), ("FlavorAccess", "os-flavor-access"),
    ("FlavorExtraData", "OS-FLV-EXT-DATA"), ("FlavorExtraSpecs", "os-flavor-extra-specs"),
    ("FlavorManage", "os-flavor-manage"), ("FlavorRxtx", "os-flavor-rxtx"),
    ("Flavors", "flavors"), ("FloatingIpDns", "os-floating-ip-dns"),
    ("FloatingIpPools", "os-floating-ip-pools"), ("FloatingIps", "os-floating-ips"),
    ("FloatingIpsBulk", "os-floating-ips-bulk"), ("Fping", "os-fping"),
    ("Hosts", "os-hosts"), ("Hypervisors", "os-hypervisors"),
    ("ImageMetadata", "image-metadata"), ("ImageSize", "OS-EXT-IMG-SIZE"),
    ("Images", "images"), ("InstanceActions", "os-instance-actions"),
    ("OSInstanceUsageAuditLog", "os-instance-usage-audit-log"), ("Ips", "ips"),
    ("Keypairs", "os-keypairs"), ("Limits", "limits"), ("LockServer", "os-lock-server"),
    ("MigrateServer", "os-migrate-server"), ("Migrations", "os-migrations"),
    ("Multinic", "os-multinic"), ("MultipleCreate", "os-multiple-create"),
    ("NetworkAssociationSupport", "os-networks-associate"), ("Networks", "os-networks"),
    ("PauseServer", "os-pause-server"), ("PreserveEphemeralOnRebuild",
                                          "os-preserve-ephemeral-rebuild"),
    ("QuotaClasses", "os-quota-class-sets"), ("Quotas", "os-quota-sets"),
    ("Rescue", "os-rescue"), ("SchedulerHints", "OS-SCH-HNT"),
    ("SecurityGroupDefaultRules", "os-security-group-default-rules"),
    ("SecurityGroups", "os-security-groups"), ("ServerDiagnostics", "os-server-diagnostics"),
    ("ServerExternalEvents", "os-server-external-events"),
    ("ServerGroups", "os-server-groups"), ("ServerMetadata", "server-metadata"),
    ("ServerPassword", "os-server-password"), ("ServerStartStop", "os-server-start-stop"),
    ("ServerUsage", "OS-SRV-USG"), ("Servers", "servers"), ("Services", "os-services"),
    ("Shelve", "os-shelve"), ("SimpleTenantUsage", "os-simple-tenant-usage"),
    ("SuspendServer", "os-suspend-server"), ("TenantNetworks", "os-tenant-networks"),
    ("UsedLimits", "os-used-limits"), ("UserData", "os-user-data"),
    ("Versions", "versions"), ("VolumeAttachmentUpdate", "os-volume-attachment-update"),
    ("Volumes", "os-volumes"),
)


def _entry(name: str, alias: str) -> dict[str, Any]:
    return {"name": name, "alias": alias, "description": f"The {name} API.",
            "links": [], "namespace": NAMESPACE, "updated": UPDATED}


async def list_extensions(request: Request) -> Response:
    return json_response({"extensions": [_entry(n, a) for n, a in EXTENSIONS]})


async def show_extension(request: Request) -> Response:
    alias = request.path_params["alias"]
    for name, known in EXTENSIONS:
        if known == alias:
            return json_response({"extension": _entry(name, known)})
    raise NotFound(f"Extension {alias} could not be found.")


routes = [
    Route("/v2.1/extensions", reader(list_extensions), methods=["GET"]),
    Route("/v2.1/extensions/{alias}", reader(show_extension), methods=["GET"]),
]
