"""Build this host's agent from the configuration (drivers by name, host name, prefix)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from onestack.agent.reconciler import Agent
from onestack.common.config import Config
from onestack.drivers import hypervisor, network, storage
from onestack.drivers.hypervisor.base import HypervisorDriver
from onestack.drivers.network.base import NetworkDriver
from onestack.drivers.storage.base import StorageDriver
from onestack.hostlink.interfaces import HostToServer

log = logging.getLogger(__name__)


def host_name(config: Config) -> str:
    return config.host.name or socket.gethostname()


def build_hypervisor(config: Config, probe_kernel: Path | None = None) -> HypervisorDriver:
    hc = config.host
    return hypervisor.load(hc.hypervisor_driver, instances_dir=config.state_dir / "instances",
                           accel=hc.accel, name_prefix=hc.name_prefix,
                           probe_kernel=probe_kernel, ceph_conf=config.ceph.conf,
                           ceph_user=config.ceph.user)


def build_storage(config: Config) -> StorageDriver:
    c = config.ceph  # for ``rbd``; the other drivers ignore it
    return storage.load(config.host.storage_driver, root=config.state_dir / "disks",
                        ceph_conf=c.conf, ceph_keyring=c.keyring, ceph_user=c.user,
                        images_pool=c.images_pool, vms_pool=c.vms_pool)


def tunnel_ip(config: Config) -> str:
    """This host's VXLAN tunnel address: ``[host] tunnel_ip``, else the local address of
    the route to the server (no packet is sent), else 127.0.0.1."""
    if config.host.tunnel_ip:
        return config.host.tunnel_ip
    server = urlsplit(config.public_url).hostname or "127.0.0.1"
    try:
        family, _, _, _, address = socket.getaddrinfo(server, 4789, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            return str(sock.getsockname()[0])
    except OSError as exc:
        log.warning("no route to the server %s to pick a tunnel address: %s", server, exc)
        return "127.0.0.1"


def build_network(config: Config, tunnel: str = "") -> NetworkDriver:
    hc = config.host
    return network.load(hc.network_driver, l2=hc.l2_driver, dhcp=hc.dhcp_driver,
                        l3=hc.l3_driver, firewall=hc.firewall_driver,
                        state_dir=config.state_dir, name_prefix=hc.name_prefix,
                        tunnel_ip=tunnel)


def build_agent(config: Config, control: HostToServer,
                probe_kernel: Path | None = None) -> Agent:
    """This host's agent, talking to the server through ``control`` (the server's host
    service itself in the all-in-one mode, an HTTP client for a remote host).
    ``probe_kernel``: what the hypervisor boots to find out whether KVM works (a kernel
    or a bootable qcow2; None: the newest /boot/vmlinuz-*)."""
    hc = config.host
    name = host_name(config)
    tunnel = tunnel_ip(config)
    hv, st, net = build_hypervisor(config, probe_kernel), build_storage(config), \
        build_network(config, tunnel)
    proxy = None
    if net.capabilities.get("metadata_service"):
        from onestack.agent.metadata_proxy import MetadataProxy

        proxy = MetadataProxy(config.public_url, control.metadata_secret(),
                              control.instance_for_address)

    def overrides() -> dict[str, Any]:
        return {"vcpus": hc.vcpus, "memory_mb": hc.memory_mib, "local_gb": hc.disk_gb,
                "cpu_allocation_ratio": hc.cpu_allocation_ratio,
                "ram_allocation_ratio": hc.ram_allocation_ratio,
                "disk_allocation_ratio": hc.disk_allocation_ratio, "host_ip": tunnel}

    agent = Agent(name, control, hv, st, net, poll_interval=hc.poll_interval,
                  shutdown_timeout=config.compute.shutdown_timeout, metadata_proxy=proxy,
                  report_extra=overrides, network_idle_seconds=hc.network_idle_seconds,
                  external_gateway_on_host=hc.external_gateway_on_host,
                  external_masquerade=hc.external_masquerade,
                  external_interface=hc.external_interface)
    log.info("agent for host %s: hypervisor %s, storage %s, network %s", name,
             hc.hypervisor_driver, hc.storage_driver, hc.network_driver)
    return agent
