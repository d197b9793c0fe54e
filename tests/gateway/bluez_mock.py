"""A python-dbusmock template: BlueZ 5 with PharmaSync boxes that serve their GATT service.

dbusmock's own `bluez5` template has adapters and devices (Connect, Disconnect, discovery)
but no GATT objects, and its Connect never resolves services, so a GATT client such as
bleak cannot get past connecting. This template adds, per AddBox():

    <adapter>/dev_XX_XX_XX_XX_XX_XX              org.bluez.Device1: Connect also sets
                                                 ServicesResolved; connect failures on demand
      /service0010                               org.bluez.GattService1  ble.SERVICE_UUID
        /char0011  read, notify                  reading: Value changes = notifications
        /char0013  write                         control: the box's command handling
        /char0015  read                          status: the box's status JSON

and the adapter's StartDiscovery makes every box that is not connected "advertise" (an
RSSI change), which is how bleak's scanner sees a device; like BlueZ, it refuses a second
discovery from the same client (org.bluez.Error.InProgress). The control characteristic
behaves as device/ble.py serve() does, with the box's own codec (decode_command): REPLAY
notifies each pending reading with seq >= from_seq, ACK forgets readings up to its seq,
a malformed command is ignored. Readings are the test's bytes; nothing here checks them.

It runs inside dbusmock's process (dbus-python and GLib), never under pytest:

    PYTHONPATH=<repo> python3 -m dbusmock --system --template tests/gateway/bluez_mock.py

Test-side methods, on "/" in org.bluez.Mock: AddBox, StoreReading, Notify, DropLink,
HoldConnected, FailConnects, ControlWrites, Backlog, Counts (see each one below).
"""

import dbus
from dbusmock import OBJECT_MANAGER_IFACE, mockobject
from dbusmock.templates import bluez5

# bluez5's D-Bus methods on "/" (AddAdapter, AddDevice, ...) are found by name in this module.
from dbusmock.templates.bluez5 import AddAdapter, AddDevice, RemoveAdapter  # noqa: F401
from gi.repository import GLib

from device import ack, ble, reading

BUS_NAME = bluez5.BUS_NAME
MAIN_OBJ = "/"
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True

MOCK_IFACE = bluez5.BLUEZ_MOCK_IFACE
ADAPTER_IFACE = bluez5.ADAPTER_IFACE
DEVICE_IFACE = bluez5.DEVICE_IFACE
SERVICE_IFACE = "org.bluez.GattService1"
CHAR_IFACE = "org.bluez.GattCharacteristic1"
ADV_INTERVAL_MS = 100  # how often a box advertises (device/ble.py: every 250 ms)
MTU = 247  # what BlueZ >= 5.62 reports per characteristic once the box's MTU is exchanged


def load(mock, parameters):
    bluez5.load(mock, parameters)


def _bool(value):
    return dbus.Boolean(value, variant_level=1)


def _bytes(value):
    return dbus.Array([dbus.Byte(b) for b in bytes(value)], signature="y", variant_level=1)


# -- the box as BlueZ shows it -----------------------------------------------------------


def _device(path):
    return mockobject.objects[str(path)]


def _notify(device, wire):
    reading = _device(device.reading_path)
    if reading.props[CHAR_IFACE]["Notifying"]:
        reading.UpdateProperties(CHAR_IFACE, {"Value": _bytes(wire)})


def _link_down(device):
    # The link is gone: notifications stop, services are unresolved, the device disconnected.
    device.connected = False
    _device(device.reading_path).UpdateProperties(CHAR_IFACE, {"Notifying": _bool(False)})
    device.UpdateProperties(DEVICE_IFACE, {"ServicesResolved": _bool(False)})
    device.UpdateProperties(DEVICE_IFACE, {"Connected": _bool(False)})


def _connect(device):
    if device.connect_errors:
        name, message = device.connect_errors.pop(0)
        raise dbus.exceptions.DBusException(message, name=name)
    if device.connected:
        raise dbus.exceptions.DBusException("Already Connected", name="org.bluez.Error.Failed")
    device.connected = True
    device.counts["connects"] += 1
    device.UpdateProperties(DEVICE_IFACE, {"Connected": _bool(True)})
    device.UpdateProperties(DEVICE_IFACE, {"ServicesResolved": _bool(True)})


def _disconnect(device):
    if not device.connected:
        raise dbus.exceptions.DBusException("Not Connected", name="org.bluez.Error.NotConnected")
    device.counts["disconnects"] += 1
    _link_down(device)


def _advertise(adapter):
    # Every box that is not connected advertises; BlueZ turns each advertisement it sees
    # while discovering into a property change (RSSI at least), which bleak's scanner reads.
    if not adapter.props[ADAPTER_IFACE]["Discovering"]:
        adapter.advertising = False
        return False  # GLib: stop calling
    for path, obj in list(mockobject.objects.items()):
        is_device = path.startswith(adapter.path + "/dev_") and path.count("/") == 4
        if is_device and not obj.connected:
            obj.UpdateProperties(DEVICE_IFACE, {"RSSI": dbus.Int16(-60, variant_level=1)})
    return True


def _start_discovery(adapter):
    # BlueZ runs one discovery per D-Bus client; bleak discovers through one connection.
    if adapter.props[ADAPTER_IFACE]["Discovering"]:
        raise dbus.exceptions.DBusException(
            "Operation already in progress", name="org.bluez.Error.InProgress"
        )
    bluez5.StartDiscovery(adapter)
    if not getattr(adapter, "advertising", False):
        adapter.advertising = True
        GLib.timeout_add(ADV_INTERVAL_MS, _advertise, adapter)


def _read_value(char, _options):
    device = _device(char.device_path)
    if char.path == device.status_path:
        return device.box_status
    return bytes(char.props[CHAR_IFACE]["Value"])


def _write_value(char, value, _options):
    device = _device(char.device_path)
    data = bytes(value)
    device.box_writes.append(data)
    try:
        op, arg = ble.decode_command(data)
    except ble.CommandError:
        return  # the box logs it and carries on
    if op == ble.OP_ACK:
        ranges = ack.decode(arg, b"", None)  # an insecure-acks box: no signature check
        device.box_backlog = [
            w for w in device.box_backlog if not any(a <= reading.seq_of(w) <= b for a, b in ranges)
        ]
    elif op == ble.OP_CERT:
        device.box_certs.append(arg)
    else:
        for wire in list(device.box_backlog):
            if reading.seq_of(wire) >= arg:
                _notify(device, wire)


def _start_notify(char):
    _device(char.device_path).counts["notify_starts"] += 1
    char.UpdateProperties(CHAR_IFACE, {"Notifying": _bool(True)})


def _stop_notify(char):
    char.UpdateProperties(CHAR_IFACE, {"Notifying": _bool(False)})


def _advertise_as_box(device):
    # A box advertises its service UUID. bluez5's AddDevice (python-dbusmock 0.28) types the
    # data properties as arrays of dicts; BlueZ and bleak's scanner have dicts.
    fixed = {
        "UUIDs": dbus.Array([ble.SERVICE_UUID], signature="s", variant_level=1),
        "ManufacturerData": dbus.Dictionary({}, signature="qv", variant_level=1),
        "ServiceData": dbus.Dictionary({}, signature="sv", variant_level=1),
        "AdvertisingData": dbus.Dictionary({}, signature="yv", variant_level=1),
    }
    device.props[DEVICE_IFACE].update(fixed)
    device.EmitSignal(
        dbus.PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as", [DEVICE_IFACE, fixed, []]
    )


def _add_gatt_object(root, path, interface, props, methods):
    root.AddObject(path, interface, props, methods)
    root.EmitSignal(
        OBJECT_MANAGER_IFACE,
        "InterfacesAdded",
        "oa{sa{sv}}",
        [dbus.ObjectPath(path), {interface: props}],
    )
    return mockobject.objects[path]


# -- the test's handles (org.bluez.Mock on "/") -------------------------------------------


@dbus.service.method(MOCK_IFACE, in_signature="sssay", out_signature="o")
def AddBox(self, adapter_name, address, name, status):
    """Add a box advertising as `name` (and the adapter, if new); return its device path."""
    adapter_path = "/org/bluez/" + adapter_name
    if adapter_path not in mockobject.objects:
        AddAdapter(self, adapter_name, "pharmasync-gateway")
        adapter = mockobject.objects[adapter_path]
        adapter.AddMethod(ADAPTER_IFACE, "StartDiscovery", "", "", _start_discovery)
        # BlueZ >= 5.66 lists the adapter's LE roles; bleak scans only with a "central" one.
        roles = dbus.Array(["central", "peripheral"], signature="s", variant_level=1)
        adapter.AddProperty(ADAPTER_IFACE, "Roles", roles)
        adapter.UpdateProperties(ADAPTER_IFACE, {"Roles": roles})
    path = str(AddDevice(self, adapter_name, address, name))
    device = _device(path)
    _advertise_as_box(device)
    device.AddMethods(
        DEVICE_IFACE, [("Connect", "", "", _connect), ("Disconnect", "", "", _disconnect)]
    )
    device.box_status = bytes(status)
    device.box_backlog = []  # pending readings, oldest first
    device.box_certs = []  # certificates the gateway presented
    device.box_writes = []  # every control write, as written
    device.connect_errors = []  # (D-Bus error name, message) for the next Connect calls
    device.counts = {"connects": 0, "disconnects": 0, "drops": 0, "notify_starts": 0}
    service = path + "/service0010"
    _add_gatt_object(
        self,
        service,
        SERVICE_IFACE,
        {
            "UUID": dbus.String(ble.SERVICE_UUID, variant_level=1),
            "Device": dbus.ObjectPath(path, variant_level=1),
            "Primary": _bool(True),
            "Includes": dbus.Array([], signature="o", variant_level=1),
        },
        [],
    )
    chars = (
        ("/char0011", ble.READING_UUID, ["read", "notify"]),
        ("/char0013", ble.CONTROL_UUID, ["write"]),
        ("/char0015", ble.STATUS_UUID, ["read"]),
    )
    for suffix, uuid, flags in chars:
        props = {
            "UUID": dbus.String(uuid, variant_level=1),
            "Service": dbus.ObjectPath(service, variant_level=1),
            "Value": _bytes(b""),
            "Notifying": _bool(False),
            "Flags": dbus.Array(flags, signature="s", variant_level=1),
            "MTU": dbus.UInt16(MTU, variant_level=1),
        }
        methods = [("ReadValue", "a{sv}", "ay", _read_value)]
        if "write" in flags:
            methods.append(("WriteValue", "aya{sv}", "", _write_value))
        if "notify" in flags:
            methods += [
                ("StartNotify", "", "", _start_notify),
                ("StopNotify", "", "", _stop_notify),
            ]
        char = _add_gatt_object(self, service + suffix, CHAR_IFACE, props, methods)
        char.device_path = path
    device.reading_path = service + "/char0011"
    device.status_path = service + "/char0015"
    return dbus.ObjectPath(path)


@dbus.service.method(MOCK_IFACE, in_signature="oay", out_signature="")
def StoreReading(self, device_path, wire):
    """The box stores a new reading: keep it pending and notify it if subscribed."""
    device = _device(device_path)
    device.box_backlog.append(bytes(wire))
    _notify(device, wire)


@dbus.service.method(MOCK_IFACE, in_signature="oay", out_signature="")
def Notify(self, device_path, value):
    """Notify arbitrary bytes on the reading characteristic, without storing them."""
    _notify(_device(device_path), value)


@dbus.service.method(MOCK_IFACE, in_signature="o", out_signature="")
def DropLink(self, device_path):
    """The radio loses the box: BlueZ reports it disconnected."""
    device = _device(device_path)
    device.counts["drops"] += 1
    _link_down(device)


@dbus.service.method(MOCK_IFACE, in_signature="o", out_signature="")
def HoldConnected(self, device_path):
    """BlueZ connects the box for a client that then goes away (a gateway that crashed):
    the box stays connected, so it does not advertise."""
    _connect(_device(device_path))


@dbus.service.method(MOCK_IFACE, in_signature="ouss", out_signature="")
def FailConnects(self, device_path, count, error_name, message):
    """Make the next `count` Connect calls fail with this D-Bus error."""
    _device(device_path).connect_errors.extend([(str(error_name), str(message))] * count)


@dbus.service.method(MOCK_IFACE, in_signature="o", out_signature="aay")
def ControlWrites(self, device_path):
    return _device(device_path).box_writes


@dbus.service.method(MOCK_IFACE, in_signature="o", out_signature="aay")
def Backlog(self, device_path):
    return _device(device_path).box_backlog


@dbus.service.method(MOCK_IFACE, in_signature="o", out_signature="a{su}")
def Counts(self, device_path):
    return dbus.Dictionary(_device(device_path).counts, signature="su")
