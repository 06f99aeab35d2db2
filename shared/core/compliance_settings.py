"""Intune compliance states and settings in words for people. Pure.

A table turns the setting names Intune reports (`Windows10CompliancePolicy.BitLockerEnabled`: the
policy class, a dot, the property of that class in Graph) into a sentence and a fix; a setting
devicemon does not know keeps the name Intune gave it and is never dropped. The states are
Graph's complianceStatus (microsoft-graph-docs-contrib,
api-reference/v1.0/resources/intune-shared-compliancestatus.md). shared.core.compliance_details
parses the payloads that carry them; docs/compliance-details.md explains both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StateMeaning:
    state: str  # a complianceStatus value, as Graph spells it
    failing: bool  # whether it can make the device not compliant
    meaning: str  # one sentence for people


# complianceStatus (intune-shared-compliancestatus.md). Error and conflict count as failing:
# memdocs compliance-policy-monitor.md says a setting in Error keeps the device's state for up
# to seven days and then makes it not compliant at once, with no grace period; a conflict is
# two settings Intune cannot reconcile, which "an administrator should review".
STATES: dict[str, StateMeaning] = {
    m.state: m
    for m in (
        StateMeaning("unknown", False, "Intune has no result for it yet."),
        StateMeaning("notApplicable", False, "It does not apply to this device."),
        StateMeaning("compliant", False, "The device meets it."),
        StateMeaning("remediated", False, "Intune corrected it and the device now meets it."),
        StateMeaning("nonCompliant", True, "The device does not meet it."),
        StateMeaning(
            "error",
            True,
            "Intune could not evaluate it; after seven days in error the device is marked not "
            "compliant at once, with no grace period.",
        ),
        StateMeaning(
            "conflict",
            True,
            "Two policies set it differently and Intune cannot resolve the conflict.",
        ),
        StateMeaning("notAssigned", False, "It is not assigned to the device."),
    )
}
FAILING_STATES = frozenset(s for s, m in STATES.items() if m.failing)
_STATE_BY_LOWER = {s.lower(): s for s in STATES}


def canonical_state(raw: object) -> str:
    """Graph's spelling of a complianceStatus value; an unknown value is kept as it came."""
    text = str(raw or "").strip()
    return _STATE_BY_LOWER.get(text.lower(), text)


def state_meaning(state: str) -> StateMeaning:
    known = STATES.get(canonical_state(state))
    if known is not None:
        return known
    # A value added to the enum after this was written: not evidence of failure.
    return StateMeaning(state, False, f"Intune reports a state devicemon does not know: {state}.")


# --- words for settings ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Words:
    subject: str  # what the setting checks, for sentences about errors and conflicts
    problem: str  # the sentence when the device does not meet it
    fix: str


_PIN_FIX = "Set a device password or PIN that meets the policy; the device asks for it."
_OS_UPDATE = "Install the pending OS updates, restart, then sync the device with Intune."
_PLAY_FIX = "Use the stock, unmodified OS from the manufacturer; a modified device cannot pass."

# By property (the part after the dot, compared without case: Intune has been seen spelling
# both `SecureBootEnabled` and `secureBootEnabled`). Names from the compliance policy
# resources of Graph v1.0 (windows10CompliancePolicy, iosCompliancePolicy, macOSCompliancePolicy,
# androidCompliancePolicy, androidWorkProfileCompliancePolicy, androidDeviceOwnerCompliancePolicy)
# and the built-in DefaultDeviceCompliancePolicy; meanings from memdocs
# compliance-policy-create-windows.md and its siblings for each platform.
_BY_PROPERTY: dict[str, Words] = {
    # Built-in device compliance policy (every enrolled device gets it).
    "RequireRemainContact": Words(
        "check-in with Intune",
        "The device has not checked in with Intune within the compliance status validity "
        "period (30 days unless changed).",
        "Turn the device on, connect it to the network and sync it from Company Portal; if it "
        "is retired, delete it from Intune and Entra ID.",
    ),
    "RequireDeviceCompliancePolicyAssigned": Words(
        "compliance policy assignment",
        "No compliance policy is assigned to the device, and the tenant marks such devices as "
        "not compliant.",
        "Assign a compliance policy for the device's platform to the device or its user.",
    ),
    "RequireUserExistence": Words(
        "enrolled user",
        "The user who enrolled the device no longer exists in Microsoft Entra ID.",
        "Enroll the device again with an existing user, or retire it.",
    ),
    # Device health (Windows device health attestation).
    "BitLockerEnabled": Words(
        "BitLocker",
        "BitLocker drive encryption is off (as reported by Windows device health attestation).",
        "Turn on BitLocker for the OS drive (an Intune disk encryption policy can), then "
        "restart so that health attestation reports it.",
    ),
    "SecureBootEnabled": Words(
        "Secure Boot",
        "Secure Boot is not enabled in the device's UEFI firmware.",
        "Enable Secure Boot in the UEFI firmware settings and restart.",
    ),
    "CodeIntegrityEnabled": Words(
        "code integrity",
        "Windows code integrity is not reported as enabled: an unsigned or altered driver or "
        "system file may be loaded.",
        "Remove unsigned drivers, turn off test signing (bcdedit /set testsigning off) and "
        "restart.",
    ),
    "EarlyLaunchAntiMalwareDriverEnabled": Words(
        "early-launch antimalware",
        "The early-launch antimalware driver is not enabled.",
        "Turn on Microsoft Defender Antivirus (it provides the driver) and restart.",
    ),
    # Operating system version.
    "OsMinimumVersion": Words(
        "minimum OS version",
        "The operating system is older than the minimum version the policy allows.",
        _OS_UPDATE,
    ),
    "OsMaximumVersion": Words(
        "maximum OS version",
        "The operating system is newer than the maximum version the policy allows.",
        "If the release is approved, raise the maximum OS version in the policy; the device "
        "cannot pass until the rule changes.",
    ),
    "MobileOsMinimumVersion": Words(
        "minimum mobile OS version",
        "The mobile operating system is older than the minimum version the policy allows.",
        _OS_UPDATE,
    ),
    "MobileOsMaximumVersion": Words(
        "maximum mobile OS version",
        "The mobile operating system is newer than the maximum version the policy allows.",
        "If the release is approved, raise the maximum OS version in the policy.",
    ),
    "OsMinimumBuildVersion": Words(
        "minimum OS build",
        "The OS build is older than the minimum build the policy allows.",
        _OS_UPDATE,
    ),
    "OsMaximumBuildVersion": Words(
        "maximum OS build",
        "The OS build is newer than the maximum build the policy allows.",
        "If the build is approved, raise the maximum build in the policy.",
    ),
    "ValidOperatingSystemBuildRanges": Words(
        "valid OS builds",
        "The OS build is outside the build ranges the policy allows.",
        "Update to a build inside the allowed ranges, or widen the ranges in the policy.",
    ),
    "MinAndroidSecurityPatchLevel": Words(
        "Android security patch level",
        "The Android security patch level is older than the policy requires.",
        "Install the latest system update from the manufacturer, then sync the device.",
    ),
    # Encryption.
    "StorageRequireEncryption": Words(
        "storage encryption",
        "The policy requires encrypted storage and the device's storage is not encrypted.",
        "Encrypt the device's storage (BitLocker on Windows, FileVault on macOS, device "
        "encryption on Android), then sync the device.",
    ),
    # Firewall.
    "ActiveFirewallRequired": Words(
        "firewall",
        "Microsoft Defender Firewall is off.",
        "Turn on Microsoft Defender Firewall and check that no policy turns it off; a sync "
        "right after a restart can report an error, so sync again.",
    ),
    "FirewallEnabled": Words(
        "firewall", "The firewall is off.", "Turn on the firewall in System Settings > Network."
    ),
    "FirewallBlockAllIncoming": Words(
        "firewall incoming connections",
        "The firewall does not block all incoming connections.",
        "Turn on 'Block all incoming connections' in the firewall options.",
    ),
    "FirewallEnableStealthMode": Words(
        "firewall stealth mode",
        "Firewall stealth mode is off.",
        "Turn on stealth mode in the firewall options.",
    ),
    # Hardware.
    "TpmRequired": Words(
        "TPM",
        "No Trusted Platform Module (TPM) is reported on the device.",
        "Enable the TPM in the UEFI firmware; hardware without a TPM cannot pass.",
    ),
    # Antivirus and Microsoft Defender.
    "AntivirusRequired": Words(
        "antivirus",
        "No antivirus registered with Windows Security Center is on and up to date.",
        "Turn on Microsoft Defender Antivirus or the organisation's antivirus and check it in "
        "Windows Security.",
    ),
    "AntiSpywareRequired": Words(
        "antispyware",
        "No antispyware registered with Windows Security Center is on and up to date.",
        "Turn on Microsoft Defender Antivirus or the organisation's antispyware and check it in "
        "Windows Security.",
    ),
    "DefenderEnabled": Words(
        "Microsoft Defender Antimalware",
        "The Microsoft Defender Antimalware service is off.",
        "Turn on Microsoft Defender Antivirus and check that no policy or other antivirus "
        "turns it off.",
    ),
    "DefenderVersion": Words(
        "Microsoft Defender Antimalware version",
        "Microsoft Defender Antimalware is older than the minimum version the policy requires.",
        "Update the Defender platform through Windows Update, then sync the device.",
    ),
    "SignatureOutOfDate": Words(
        "Defender security intelligence",
        "Microsoft Defender security intelligence (its signatures) is out of date.",
        "Update security intelligence (Windows Security > Virus & threat protection > "
        "Protection updates, or Update-MpSignature), then sync the device.",
    ),
    "RtpEnabled": Words(
        "real-time protection",
        "Microsoft Defender real-time protection is off.",
        "Turn on real-time protection in Windows Security and check that no policy turns it off.",
    ),
    "DeviceThreatProtectionRequiredSecurityLevel": Words(
        "device threat level",
        "The threat level reported by Microsoft Defender for Endpoint or the Mobile Threat "
        "Defense partner is above what the policy allows (a device with no score fails too).",
        "Investigate and remediate the threats in the threat defense console, and check that "
        "the device is onboarded.",
    ),
    "DeviceThreatProtectionEnabled": Words(
        "threat defense",
        "The policy requires a threat defense service and the device does not report to it.",
        "Onboard the device to Microsoft Defender for Endpoint or the Mobile Threat Defense app.",
    ),
    "ConfigurationManagerComplianceRequired": Words(
        "Configuration Manager compliance",
        "Configuration Manager reports the device's configuration items as not compliant.",
        "Check the device's configuration baselines and software updates in Configuration Manager.",
    ),
    # Passwords (Windows, Android, macOS say password; iOS says passcode: same words).
    "PasswordRequired": Words(
        "password",
        "The policy requires a password or PIN to unlock the device and none is set.",
        _PIN_FIX,
    ),
    "PasswordBlockSimple": Words(
        "simple passwords",
        "The password is a simple one (such as 1234 or 1111), which the policy blocks.",
        "Change the password to one that is not a simple sequence or repetition.",
    ),
    "PasswordMinimumLength": Words(
        "password length",
        "The password is shorter than the policy's minimum length.",
        "Change the password to one of at least the required length.",
    ),
    "PasswordRequiredType": Words(
        "password type",
        "The password is not of the type the policy requires (numeric or alphanumeric).",
        _PIN_FIX,
    ),
    "PasswordMinimumCharacterSetCount": Words(
        "password complexity",
        "The password uses fewer character sets (digits, lower case, upper case, symbols) than "
        "the policy requires.",
        "Change the password to one that mixes more character sets.",
    ),
    "PasswordMinutesOfInactivityBeforeLock": Words(
        "screen lock",
        "The device does not lock after the idle time the policy allows.",
        "Shorten the screen lock timeout on the device.",
    ),
    "PasswordExpirationDays": Words(
        "password age",
        "The password is older than the policy allows.",
        "Change the password.",
    ),
    "PasswordPreviousPasswordBlockCount": Words(
        "password reuse",
        "The password repeats one of the recent passwords the policy blocks.",
        "Change the password to one not used recently.",
    ),
    "PasswordRequiredToUnlockFromIdle": Words(
        "password after idle",
        "The device does not ask for the password when it returns from idle.",
        "Require the password after sleep or idle on the device.",
    ),
    # Integrity of the OS on mobile devices.
    "SecurityBlockJailbrokenDevices": Words(
        "jailbreak or root",
        "The device is jailbroken or rooted, which the policy blocks.",
        "Restore the manufacturer's OS (the device must be reset), then enroll it again.",
    ),
    "SecurityRequireSafetyNetAttestationBasicIntegrity": Words(
        "Play Integrity basic integrity",
        "The device fails Google's basic integrity check: its OS may be modified or rooted.",
        _PLAY_FIX,
    ),
    "SecurityRequireSafetyNetAttestationCertifiedDevice": Words(
        "Play Integrity certified device",
        "The device fails Google's certified device check.",
        _PLAY_FIX,
    ),
    "SecurityRequireGooglePlayServices": Words(
        "Google Play services",
        "Google Play services is not installed or not enabled.",
        "Install or enable Google Play services on the device.",
    ),
    "SecurityRequireUpToDateSecurityProviders": Words(
        "security provider",
        "The device's security provider is not up to date.",
        "Update Google Play services, then sync the device.",
    ),
    "SecurityRequireVerifyApps": Words(
        "Google Play Protect",
        "Google Play Protect app scanning is off.",
        "Turn on 'Scan apps with Play Protect' in the Play Store settings.",
    ),
    "SecurityPreventInstallAppsFromUnknownSources": Words(
        "apps from unknown sources",
        "The device allows installing apps from unknown sources.",
        "Turn off installing apps from unknown sources on the device.",
    ),
    "SecurityDisableUsbDebugging": Words(
        "USB debugging",
        "USB debugging is on.",
        "Turn off USB debugging in the device's developer options.",
    ),
    "SecurityRequireCompanyPortalAppIntegrity": Words(
        "Company Portal integrity",
        "The Company Portal app is not the one published by Microsoft.",
        "Install Company Portal from Google Play.",
    ),
    "ManagedEmailProfileRequired": Words(
        "managed email profile",
        "The email account is not set up by the managed email profile Intune deployed.",
        "Remove the email account and let Intune's email profile set it up.",
    ),
    "RestrictedApps": Words(
        "restricted apps",
        "An app the policy restricts is installed.",
        "Uninstall the restricted app, then sync the device.",
    ),
    "SystemIntegrityProtectionEnabled": Words(
        "System Integrity Protection",
        "System Integrity Protection is disabled on the Mac.",
        "Enable it from macOS Recovery (csrutil enable) and restart.",
    ),
    "GatekeeperAllowedAppSource": Words(
        "Gatekeeper",
        "Gatekeeper allows apps from sources the policy does not permit.",
        "Set 'Allow applications from' to the sources the policy permits.",
    ),
}
# iOS and Android Enterprise name the password settings "Passcode...".
_ALIASES = {
    "PasscodeRequired": "PasswordRequired",
    "PasscodeBlockSimple": "PasswordBlockSimple",
    "PasscodeMinimumLength": "PasswordMinimumLength",
    "PasscodeRequiredType": "PasswordRequiredType",
    "PasscodeMinimumCharacterSetCount": "PasswordMinimumCharacterSetCount",
    "PasscodeMinutesOfInactivityBeforeLock": "PasswordMinutesOfInactivityBeforeLock",
    "PasscodeMinutesOfInactivityBeforeScreenTimeout": "PasswordMinutesOfInactivityBeforeLock",
    "PasscodeExpirationDays": "PasswordExpirationDays",
    "PasscodePreviousPasscodeBlockCount": "PasswordPreviousPasswordBlockCount",
}
# Where one platform says it better than the generic words.
_BY_SETTING: dict[str, Words] = {
    "Windows10CompliancePolicy.StorageRequireEncryption": Words(
        "storage encryption",
        "Windows does not report its drives as encrypted.",
        "Turn on BitLocker (or device encryption) for every drive, then sync the device.",
    ),
    "MacOSCompliancePolicy.StorageRequireEncryption": Words(
        "FileVault",
        "FileVault disk encryption is off on the Mac.",
        "Turn on FileVault (an Intune disk encryption policy can), then sync the device.",
    ),
    "IOSCompliancePolicy.SecurityBlockJailbrokenDevices": Words(
        "jailbreak",
        "The device is jailbroken, which the policy blocks.",
        "Restore iOS from a computer (the device is erased), then enroll it again.",
    ),
    "AndroidCompliancePolicy.SecurityBlockJailbrokenDevices": Words(
        "root",
        "The device is rooted, which the policy blocks.",
        "Restore the manufacturer's Android (the device is reset), then enroll it again.",
    ),
    "AndroidWorkProfileCompliancePolicy.SecurityBlockJailbrokenDevices": Words(
        "root",
        "The device is rooted, which the policy blocks.",
        "Restore the manufacturer's Android (the device is reset), then enroll it again.",
    ),
}
_PROPERTY_INDEX = {name.lower(): words for name, words in _BY_PROPERTY.items()} | {
    alias.lower(): _BY_PROPERTY[target] for alias, target in _ALIASES.items()
}
_SETTING_INDEX = {name.lower(): words for name, words in _BY_SETTING.items()}
KNOWN_PROPERTIES = frozenset(_BY_PROPERTY) | frozenset(_ALIASES)
KNOWN_SETTINGS = frozenset(_BY_SETTING)  # platform-specific words, by full setting name


def words_for(setting: str) -> Words | None:
    """devicemon's words for a setting as Intune names it, or None when it does not know it."""
    key = setting.strip().lower()
    exact = _SETTING_INDEX.get(key)
    if exact is not None:
        return exact
    return _PROPERTY_INDEX.get(key.rsplit(".", 1)[-1])


@dataclass(frozen=True, slots=True)
class SettingText:
    sentence: str
    fix: str
    known: bool


def describe_setting(
    setting: str, state: str, *, policy_name: str = "", error_description: str = ""
) -> SettingText:
    """A sentence and a fix for a failing setting; an unknown one is named as Intune names it."""
    state = canonical_state(state)
    words = words_for(setting)
    policy = f"'{policy_name}'" if policy_name else "its compliance policy"
    said = f" Intune says: {error_description.strip()}" if error_description.strip() else ""
    if words is None:
        if state == "error":
            sentence = f"Intune could not evaluate the setting {setting}.{said}"
        elif state == "conflict":
            sentence = f"Policies set {setting} differently and Intune cannot resolve it."
        else:
            sentence = f"The device does not meet the setting {setting}.{said}"
        return SettingText(
            sentence, f"Open {policy} in Intune to see what {setting} requires.", False
        )
    if state == "error":
        return SettingText(
            f"Intune could not evaluate the {words.subject} requirement.{said}",
            "Sync the device; a setting still in error after seven days makes the device not "
            "compliant.",
            True,
        )
    if state == "conflict":
        return SettingText(
            f"Policies set the {words.subject} requirement differently and Intune cannot "
            "resolve it.",
            f"Review the compliance policies assigned to the device so that one sets "
            f"{words.subject}.",
            True,
        )
    return SettingText(words.problem + said, words.fix, True)
