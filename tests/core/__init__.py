"""Tests of issue 3's core: code pipeline, policy engine, test issuer and `checkpost verify`."""
