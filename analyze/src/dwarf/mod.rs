//! DWARF: types, package variables, frame locals.
