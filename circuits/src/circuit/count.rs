//! Counting the age circuit's constraints without a witness (bellman's
//! own assemblies that do this are private to the groth16 crate).

use bellman::{Circuit, ConstraintSystem, Index, LinearCombination, SynthesisError, Variable};
use bls12_381::Scalar;

use super::AgeCircuit;

/// Counts constraints and variables; values are never computed.
#[derive(Default)]
struct Counter {
    inputs: usize,
    aux: usize,
    constraints: usize,
}

impl ConstraintSystem<Scalar> for Counter {
    type Root = Self;

    fn alloc<F, A, AR>(&mut self, _: A, _: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Scalar, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        self.aux += 1;
        Ok(Variable::new_unchecked(Index::Aux(self.aux - 1)))
    }

    fn alloc_input<F, A, AR>(&mut self, _: A, _: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Scalar, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        self.inputs += 1;
        Ok(Variable::new_unchecked(Index::Input(self.inputs)))
    }

    fn enforce<A, AR, LA, LB, LC>(&mut self, _: A, _: LA, _: LB, _: LC)
    where
        A: FnOnce() -> AR,
        AR: Into<String>,
        LA: FnOnce(LinearCombination<Scalar>) -> LinearCombination<Scalar>,
        LB: FnOnce(LinearCombination<Scalar>) -> LinearCombination<Scalar>,
        LC: FnOnce(LinearCombination<Scalar>) -> LinearCombination<Scalar>,
    {
        self.constraints += 1;
    }

    fn push_namespace<NR, N>(&mut self, _: N)
    where
        NR: Into<String>,
        N: FnOnce() -> NR,
    {
    }

    fn pop_namespace(&mut self) {}

    fn get_root(&mut self) -> &mut Self::Root {
        self
    }
}

/// The shape of the age circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub constraints: usize,
    /// Declared public inputs (the implicit 1 not counted).
    pub public_inputs: usize,
    pub private_variables: usize,
}

pub fn shape() -> Result<Shape, SynthesisError> {
    let mut counter = Counter::default();
    AgeCircuit::blank().synthesize(&mut counter)?;
    Ok(Shape {
        constraints: counter.constraints,
        public_inputs: counter.inputs,
        private_variables: counter.aux,
    })
}
