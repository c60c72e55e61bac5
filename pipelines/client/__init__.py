"""The data owner's side: key files and masking of prepared folders; what leaves it is masked."""
