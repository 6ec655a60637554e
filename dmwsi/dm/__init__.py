"""Pure OMA DM 1.2 (SyncML DM) protocol library: messages, WBXML, credentials, package 0."""
