"""The firewall drivers: security groups per port (``base.py``, ``linux.py``,
``noop.py``, ``fake.py``)."""
