"""The DHCP network drivers: dnsmasq, router advertisements, the metadata address
(``base.py``, ``linux.py`` with ``dnsmasq.py``, ``fake.py``)."""
