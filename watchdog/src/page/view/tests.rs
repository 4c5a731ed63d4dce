//! Tests of the view model.
