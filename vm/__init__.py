"""wcr's WebAssembly VM: decoder, validator, runtime and engines with fully explicit state."""
