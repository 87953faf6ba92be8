"""Observium tools (read-only): devices, their state, ports and sensors, and failed alerts."""

from __future__ import annotations

from widip.functions.tools.registry import Tool, obj

DEVICE = {"anyOf": [{"type": "integer", "minimum": 1},
                    {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9.\-_]{0,252}$"}],
          "description": "identifiant numérique ou nom d'hôte Observium"}

TOOLS = [
    Tool("observium_list_devices", "observium",
         "Liste les équipements supervisés par Observium, tous ou seulement ceux en panne (down) ou actifs (up). "
         "Lists monitored devices, optionally only down or up ones.",
         obj({"status": {"enum": ["up", "down"]}}),
         lambda c, a, ctx: c.observium.list_devices(a.get("status")), read_only=True),
    Tool("observium_get_device", "observium",
         "État d'un équipement : statut, raison, site, client, dernier polling, en panne depuis. "
         "One device's state.",
         obj({"device": DEVICE}, ("device",)),
         lambda c, a, ctx: c.observium.get_device(a["device"]), read_only=True),
    Tool("observium_list_alerts", "observium",
         "Liste les alertes Observium dans un statut donné (failed par défaut). Lists alerts by status.",
         obj({"status": {"enum": ["failed", "ok", "delayed", "suppressed", "all"]},
              "device_id": {"type": "integer", "minimum": 1}}),
         lambda c, a, ctx: c.observium.list_alerts(a.get("status", "failed"), device_id=a.get("device_id")),
         read_only=True),
    Tool("observium_get_device_ports", "observium",
         "Interfaces réseau d'un équipement avec leur état (admin/oper) et leurs erreurs. A device's ports.",
         obj({"device": DEVICE}, ("device",)),
         lambda c, a, ctx: c.observium.get_device_ports(a["device"]), read_only=True),
    Tool("observium_get_device_sensors", "observium",
         "Capteurs d'un équipement (température, tension, autonomie d'onduleur…) avec leur valeur et leur état "
         "(ok, warning, alert). A device's sensors and whether each is in alarm.",
         obj({"device": DEVICE}, ("device",)),
         lambda c, a, ctx: c.observium.get_device_sensors(a["device"]), read_only=True),
]
