"""Standard management objects of the simulated device and their executors.

Builders create DevInfo, DevDetail, DMAcc (1.2 layout), FUMO, SCOMO, a
DiagMon subtree (the reference's §14 proposal) and a vendor ``./Ext`` area in
a ``DMTree`` from a device-profile dict. ``FumoStateMachine``,
``ScomoStateMachine`` and ``DiagMonRunner`` register Exec handlers that answer
202 and later, driven by an injected clock through ``poll()``, update the tree
and produce Generic Alert (1226) description dicts (reference §12, §13, §15;
see ``alerts``).

One module per management object (``devinfo``, ``devdetail``, ``dmacc``,
``fumo``, ``scomo``, ``diagmon``, ``ext``), plus the profile they are built
from (``profile``), the alerts they produce (``alerts``) and the whole
device tree (``device_tree``). This package exports their public names.
"""
from dmwsi.sim.objects.alerts import AlertMarks, generic_alert, succeeded
from dmwsi.sim.objects.devdetail import DEVDETAIL_FWV_URI, DEVDETAIL_URI, MO_DEVDETAIL, build_devdetail
from dmwsi.sim.objects.device_tree import (DEFAULT_DEVICE_TREE_CONFIG, SimulatedDeviceTree, build_device_tree,
                                           supported_management_objects)
from dmwsi.sim.objects.devinfo import DEVINFO_URI, MO_DEVINFO, build_devinfo
from dmwsi.sim.objects.diagmon import (DIAGMON_ALERT_TYPE, DIAGMON_FUNCTIONS, DIAGMON_NAMES, DIAGMON_TRAPS,
                                       MO_DIAGMON, DiagMonNames, DiagMonRunner, DiagMonStatus, build_diagmon)
from dmwsi.sim.objects.dmacc import (CLIENT_CREDENTIALS, DMACC_URI, MO_DMACC, SERVER_CREDENTIALS, AppAuthCredentials,
                                     build_dmacc, find_dm_account, read_app_auth, store_nonce)
from dmwsi.sim.objects.ext import (EXT_BATTERY_LEVEL_URI, EXT_FREE_MEMORY_URI, EXT_PRIVATE_URI, EXT_RADIO_SIGNAL_URI,
                                   EXT_URI, MO_SIMULATOR_EXT, build_ext)
from dmwsi.sim.objects.fumo import (FUMO_ALERT_TYPE_PREFIX, FUMO_BUSY_STATES, FUMO_PACKAGE_PRESENT_STATES,
                                    FUMO_RESULT_BAD_URL, FUMO_RESULT_SUCCESS, FUMO_URI, MO_FUMO, FumoScript, FumoState,
                                    FumoStateMachine, build_fumo)
from dmwsi.sim.objects.profile import AUTH_SCHEME_TO_AAUTH_TYPE, DeviceProfile, InstalledComponent, full_rights_acl
from dmwsi.sim.objects.scomo import (MO_SCOMO, SCOMO_ALERT_TYPE, SCOMO_DELIVERED_OPERATIONS,
                                     SCOMO_DEPLOYED_OPERATIONS, SCOMO_DOWNLOAD_FAILURE_RESULTS,
                                     SCOMO_DOWNLOAD_OPERATIONS, SCOMO_RESULT_SUCCESS, SCOMO_URI, DeliveredState,
                                     DeliveredStatus, DeployedState, DeployedStatus, DownloadStatus, ScomoScript,
                                     ScomoStateMachine, build_scomo, create_deployed_component)

__all__ = [
    "AlertMarks", "generic_alert", "succeeded",
    "DEVDETAIL_FWV_URI", "DEVDETAIL_URI", "MO_DEVDETAIL", "build_devdetail",
    "DEFAULT_DEVICE_TREE_CONFIG", "SimulatedDeviceTree", "build_device_tree", "supported_management_objects",
    "DEVINFO_URI", "MO_DEVINFO", "build_devinfo",
    "DIAGMON_ALERT_TYPE", "DIAGMON_FUNCTIONS", "DIAGMON_NAMES", "DIAGMON_TRAPS", "MO_DIAGMON", "DiagMonNames",
    "DiagMonRunner", "DiagMonStatus", "build_diagmon",
    "CLIENT_CREDENTIALS", "DMACC_URI", "MO_DMACC", "SERVER_CREDENTIALS", "AppAuthCredentials", "build_dmacc",
    "find_dm_account", "read_app_auth", "store_nonce",
    "EXT_BATTERY_LEVEL_URI", "EXT_FREE_MEMORY_URI", "EXT_PRIVATE_URI", "EXT_RADIO_SIGNAL_URI", "EXT_URI",
    "MO_SIMULATOR_EXT", "build_ext",
    "FUMO_ALERT_TYPE_PREFIX", "FUMO_BUSY_STATES", "FUMO_PACKAGE_PRESENT_STATES", "FUMO_RESULT_BAD_URL",
    "FUMO_RESULT_SUCCESS", "FUMO_URI", "MO_FUMO", "FumoScript", "FumoState", "FumoStateMachine", "build_fumo",
    "AUTH_SCHEME_TO_AAUTH_TYPE", "DeviceProfile", "InstalledComponent", "full_rights_acl",
    "MO_SCOMO", "SCOMO_ALERT_TYPE", "SCOMO_DELIVERED_OPERATIONS", "SCOMO_DEPLOYED_OPERATIONS",
    "SCOMO_DOWNLOAD_FAILURE_RESULTS", "SCOMO_DOWNLOAD_OPERATIONS", "SCOMO_RESULT_SUCCESS", "SCOMO_URI",
    "DeliveredState", "DeliveredStatus", "DeployedState", "DeployedStatus", "DownloadStatus", "ScomoScript",
    "ScomoStateMachine", "build_scomo", "create_deployed_component",
]
