"""The access level of each Compute route (``onestack.api.policy``), refused with
Nova's 403 ``Policy doesn't allow <rule> to be performed.``; finer checks (whose
server, admin-only actions) stay in ``services.compute.policy``."""

from __future__ import annotations

from onestack.api.access import AccessLevels
from onestack.services.compute.policy import forbidden

#: endpoint -> Nova's rule name (the one a refusal names).
RULES = {
    "list_zones": "os-availability-zone:list",
    "list_zones_detail": "os-availability-zone:detail",
    "list_services": "os-services:list", "update_service": "os-services:update",
    "delete_service": "os-services:delete",
    "create_console": "os-remote-consoles",
    "list_flavors": "flavors:index", "list_flavors_detail": "flavors:detail",
    "show_flavor": "flavors:show", "create_flavor": "os-flavor-manage:create",
    "update_flavor": "os-flavor-manage:update", "delete_flavor": "os-flavor-manage:delete",
    "flavor_action": "os-flavor-access:add_tenant_access",
    "list_flavor_access": "os-flavor-access",
    "list_extra_specs": "os-flavor-extra-specs:index",
    "create_extra_specs": "os-flavor-extra-specs:create",
    "show_extra_spec": "os-flavor-extra-specs:show",
    "update_extra_spec": "os-flavor-extra-specs:update",
    "delete_extra_spec": "os-flavor-extra-specs:delete",
    "list_hosts": "os-hosts:list", "show_host": "os-hosts:show",
    "host_action": "os-hosts:update",
    "list_hypervisors": "os-hypervisors:list",
    "list_hypervisors_detail": "os-hypervisors:list-detail",
    "hypervisor_statistics": "os-hypervisors:statistics",
    "show_hypervisor": "os-hypervisors:show", "hypervisor_uptime": "os-hypervisors:uptime",
    "search_hypervisors": "os-hypervisors:search",
    "hypervisor_servers": "os-hypervisors:servers",
    "list_actions": "os-instance-actions:list", "show_action": "os-instance-actions:show",
    "list_ips": "ips:index", "show_ips": "ips:show",
    "list_keypairs": "os-keypairs:index", "create_keypair": "os-keypairs:create",
    "show_keypair": "os-keypairs:show", "delete_keypair": "os-keypairs:delete",
    "show_quota_set": "os-quota-sets:show", "update_quota_set": "os-quota-sets:update",
    "delete_quota_set": "os-quota-sets:delete",
    "show_quota_set_detail": "os-quota-sets:detail",
    "show_quota_set_defaults": "os-quota-sets:defaults",
    "show_quota_class": "os-quota-class-sets:show",
    "update_quota_class": "os-quota-class-sets:update", "show_limits": "limits",
    "server_action": "servers:action",
    "list_interfaces": "os-attach-interfaces:list",
    "attach_interface": "os-attach-interfaces:create",
    "show_interface": "os-attach-interfaces:show",
    "detach_interface": "os-attach-interfaces:delete",
    "list_volume_attachments": "os-volumes-attachments:index",
    "attach_volume": "os-volumes-attachments:create",
    "show_volume_attachment": "os-volumes-attachments:show",
    "update_volume_attachment": "os-volumes-attachments:swap",
    "detach_volume": "os-volumes-attachments:delete",
    "diagnostics": "os-server-diagnostics", "show_password": "os-server-password:show",
    "clear_password": "os-server-password:clear",
    "list_server_migrations": "servers:migrations:index",
    "show_server_migration": "servers:migrations:show",
    "list_migrations": "os-migrations:index", "list_aggregates": "os-aggregates:index",
    "create_aggregate": "os-aggregates:create", "show_aggregate": "os-aggregates:show",
    "update_aggregate": "os-aggregates:update", "delete_aggregate": "os-aggregates:delete",
    "aggregate_action": "os-aggregates:add_host", "cache_aggregate_images": "os-aggregates:images",
    "list_groups": "os-server-groups:index", "create_group": "os-server-groups:create",
    "show_group": "os-server-groups:show", "delete_group": "os-server-groups:delete",
    "list_metadata": "server-metadata:index", "create_metadata": "server-metadata:create",
    "replace_metadata": "server-metadata:update_all",
    "show_metadata_item": "server-metadata:show",
    "update_metadata_item": "server-metadata:update",
    "delete_metadata_item": "server-metadata:delete",
    "list_tags": "os-server-tags:index", "replace_tags": "os-server-tags:update_all",
    "delete_tags": "os-server-tags:delete_all", "check_tag_exists": "os-server-tags:show",
    "add_tag": "os-server-tags:update", "delete_tag": "os-server-tags:delete",
    "list_servers": "servers:index", "list_servers_detail": "servers:detail",
    "create_server": "servers:create", "show_server": "servers:show",
    "update_server": "servers:update", "delete_server": "servers:delete",
    "list_usage": "os-simple-tenant-usage:list", "show_usage": "os-simple-tenant-usage:show",
    "create_events": "os-server-external-events:create",
    "list_audit_logs": "os-instance-usage-audit-log:list",
    "show_audit_log": "os-instance-usage-audit-log:show",
}


ACCESS = AccessLevels(forbidden, RULES, prefix="os_compute_api:")
reader = ACCESS.reader
member = ACCESS.member
admin = ACCESS.admin
reads_and_writes = ACCESS.reads_and_writes
