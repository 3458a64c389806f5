"""The extensions the Networking API implements, as ``GET /v2.0/extensions`` lists them.

Only what is real is listed (clients decide what to send by these aliases). Whoever
implements another extension adds its entry here.
"""

from __future__ import annotations

UPDATED = "2026-01-01T00:00:00-00:00"

#: (alias, name, description)
EXTENSIONS: list[tuple[str, str, str]] = [
    # -- core framework and L2 (networks, subnets, ports) --
    ("project-id", "project_id field enabled",
     "Extension that indicates that project_id field is enabled."),
    ("standard-attr-description", "standard-attr-description",
     "Extension to add descriptions to standard attributes"),
    ("standard-attr-timestamp", "Resource timestamps",
     "Adds created_at and updated_at fields to all Neutron resources that have Neutron "
     "standard attributes."),
    ("standard-attr-revisions", "Resource revision numbers",
     "This extension will display the revision number of neutron resources."),
    ("standard-attr-tag", "Tag support for resources with standard attribute: subnet, "
     "trunk, network_segment_range, router, network, policy, subnetpool, port, "
     "security_group, floatingip",
     "Enables to set tag on resources with standard attribute."),
    ("pagination", "Pagination support", "Extension that indicates that pagination is "
     "enabled."),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    ("external-net", "Neutron external network", "Adds external network attribute to "
     "network resource."),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical "
     "networks"),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for "
     "a network resource."),
    ("port-security", "Port Security", "Provides port security"),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
    ("extra_dhcp_opt", "Neutron Extra DHCP options", "Extra options configuration for "
     "DHCP. For example PXE boot options to DHCP clients can be specified (e.g. tftp-server, "
     "server-ip-address, bootfile-name)"),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external "
     "application"),
    ("ip-substring-filtering", "IP address substring filtering", "Provides IP address "
     "substring filtering when listing ports"),
    ("service-type", "Neutron Service Type Management", "API for retrieving service "
     "providers for Neutron advanced services"),
    ("subnet-external-network", "Subnet External Network", "Informs if the subnet is "
     "external or not"),
    # -- L3, security groups, quotas: add entries below --
    ("security-group", "security-group", "The security groups extension."),
    ("stateful-security-group", "Stateful security group", "Indicates if the security "
     "group is stateful or not"),
    ("quotas", "Quota management support", "Expose functions for quotas management per "
     "project"),
    ("quota_details", "Quota details management support", "Expose functions for quotas "
     "usage statistics per project"),
    ("quota-check-limit", "Quota engine limit check", "Support for checking the resource "
     "usage before applying a new quota limit"),
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 "
     "Neutron networks and access to external networks via a NAT gateway."),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the "
     "router abstraction for specifying whether SNAT should occur on the external gateway"),
    ("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"),
    ("extraroute-atomic", "Atomically add/remove extra routes", "Edit extra routes of a "
     "router on server side by atomically adding/removing extra routes"),
    ("subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a "
     "subnet pool"),
    ("default-subnetpools", "Default Subnetpools", "Provides ability to mark and use a "
     "subnetpool as the default."),
    ("fip-port-details", "Floating IP Port Details Extension", "Add port_details attribute "
     "to Floating IP resource"),
    ("auto-allocated-topology", "Auto Allocated Topology Services", "Auto Allocated "
     "Topology Services."),
]


def extension_body(alias: str, name: str, description: str) -> dict[str, object]:
    return {"alias": alias, "name": name, "description": description, "updated": UPDATED,
            "links": []}
