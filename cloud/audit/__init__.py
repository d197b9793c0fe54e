"""The auditor's side: proof bundles, receipts and following the whole log, trusting nothing."""
