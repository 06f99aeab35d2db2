"""Every enumerated value Graph documents for `device` and `managedDevice`, with its source.

Sources: microsoft-graph-docs-contrib api-reference/v1.0/resources/device.md and
intune-devices-manageddevice.md (and the enum pages they link), cross-checked with the v1.0
metadata msgraph-sdk is generated from (msgraph/generated/models/*.py). Admin input is
checked against these so a test cannot build a device Graph would never send; where the docs
say a property "might return other values" it is not checked.
"""

from __future__ import annotations

# device.md, trustType: Workplace (registered), AzureAd (Entra joined), ServerAd (hybrid).
TRUST_TYPES = ("AzureAd", "ServerAd", "Workplace", None)

# device.md, profileType: "RegisteredDevice (default), SecureVM, Printer, Shared, IoT". A
# hybrid device synced by Entra Connect but not registered yet has none (null) and no
# alternativeSecurityIds: that is a Pending device (SupportArticles-docs pending-devices.md).
PROFILE_TYPES = ("RegisteredDevice", "SecureVM", "Printer", "Shared", "IoT", None)

# device.md, deviceOwnership: "unknown, company, personal" (Intune sets it). Tenants show
# them capitalised ("Company"), so values are matched without regard to case.
DEVICE_OWNERSHIP = ("unknown", "company", "personal", None)

# device.md, enrollmentType; the docs add "This property might return other values apart
# from those listed", so it is a vocabulary for generators, not a check.
DEVICE_ENROLLMENT_TYPES = (
    "unknown",
    "userEnrollment",
    "deviceEnrollmentManager",
    "appleBulkWithUser",
    "appleBulkWithoutUser",
    "windowsAzureADJoin",
    "windowsBulkUserless",
    "windowsAutoEnrollment",
    "windowsBulkAzureDomainJoin",
    "windowsCoManagement",
    "windowsAzureADJoinUsingDeviceAuth",
    "appleUserEnrollment",
    "appleUserEnrollmentWithServiceAccount",
)

# intune-devices-managementagenttype.md (eas ... googleCloudDevicePolicyController) plus the
# two members the v1.0 metadata has since gained (microsoft365ManagedMdm, msSense).
MANAGEMENT_AGENTS = (
    "eas",
    "mdm",
    "easMdm",
    "intuneClient",
    "easIntuneClient",
    "configurationManagerClient",
    "configurationManagerClientMdm",
    "configurationManagerClientMdmEas",
    "unknown",
    "jamf",
    "googleCloudDevicePolicyController",
    "microsoft365ManagedMdm",
    "msSense",
)
# device.md, managementType: the managementAgentType names (Intune sets it; tenants show
# "MDM", so matched without regard to case).
MANAGEMENT_TYPES = (*MANAGEMENT_AGENTS[:11], None)

# device.md, operatingSystem is free text ("The type of operating system on the device";
# entra-docs concept-condition-filters-for-devices.md: "like Windows, iOS, or Android").
# Examples for generators, not a check: Windows, Apple and Android platforms, macOS as an
# Intune-enrolled Mac registers (MacMDM), and Linux (device-delta.md's example is "linux").
OPERATING_SYSTEMS = ("Windows", "iOS", "Android", "MacMDM", "macOS", "Linux")

# intune-devices-compliancestate.md
COMPLIANCE_STATES = (
    "unknown",
    "compliant",
    "noncompliant",
    "conflict",
    "error",
    "inGracePeriod",
    "configManager",
)
# intune-devices-manageddeviceownertype.md
MANAGED_DEVICE_OWNER_TYPES = ("unknown", "company", "personal", "unknownFutureValue")
# intune-devices-deviceenrollmenttype.md (v1.0 metadata: the device list plus the sentinel)
MANAGED_ENROLLMENT_TYPES = (*DEVICE_ENROLLMENT_TYPES, "unknownFutureValue")
# intune-devices-deviceregistrationstate.md
DEVICE_REGISTRATION_STATES = (
    "notRegistered",
    "registered",
    "revoked",
    "keyConflict",
    "approvalPending",
    "certificateReset",
    "notRegisteredPendingEnrollment",
    "unknown",
)
# intune-devices-managementstate.md
MANAGEMENT_STATES = (
    "managed",
    "retirePending",
    "retireFailed",
    "wipePending",
    "wipeFailed",
    "unhealthy",
    "deletePending",
    "retireIssued",
    "wipeIssued",
    "wipeCanceled",
    "retireCanceled",
    "discovered",
    "unknownFutureValue",
)
# intune-devices-devicemanagementexchangeaccessstate.md
EXCHANGE_ACCESS_STATES = ("none", "unknown", "allowed", "blocked", "quarantined")
# intune-devices-devicemanagementexchangeaccessstatereason.md
EXCHANGE_ACCESS_STATE_REASONS = (
    "none",
    "unknown",
    "exchangeGlobalRule",
    "exchangeIndividualRule",
    "exchangeDeviceRule",
    "exchangeUpgrade",
    "exchangeMailboxPolicy",
    "other",
    "compliant",
    "notCompliant",
    "notEnrolled",
    "unknownLocation",
    "mfaRequired",
    "azureADBlockDueToAccessPolicy",
    "compromisedPassword",
    "deviceNotKnownWithManagedApp",
)
# intune-devices-manageddevicepartnerreportedhealthstate.md
PARTNER_THREAT_STATES = (
    "unknown",
    "activated",
    "deactivated",
    "secured",
    "lowSeverity",
    "mediumSeverity",
    "highSeverity",
    "unresponsive",
    "compromised",
    "misconfigured",
)
# intune-devices-configurationmanagerclientenabledfeatures.md: which workloads a co-managed
# device has moved to Intune (compliancePolicy true = Intune evaluates compliance).
CONFIGMGR_FEATURES = (
    "inventory",
    "modernApps",
    "resourceAccess",
    "deviceConfiguration",
    "compliancePolicy",
    "windowsUpdateForBusiness",
)
