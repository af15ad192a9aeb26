//! Per-session state of feature modules, keyed by type, so modules never share structs.

use std::any::{Any, TypeId};

#[derive(Default)]
pub struct Ext(Vec<(TypeId, Box<dyn Any>)>);

impl Ext {
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.0.iter().find(|(t, _)| *t == TypeId::of::<T>()).and_then(|(_, v)| v.downcast_ref())
    }
    pub fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.0.iter_mut().find(|(t, _)| *t == TypeId::of::<T>()).and_then(|(_, v)| v.downcast_mut())
    }
    pub fn insert<T: 'static>(&mut self, v: T) {
        self.remove::<T>();
        self.0.push((TypeId::of::<T>(), Box::new(v)));
    }
    pub fn remove<T: 'static>(&mut self) -> Option<T> {
        let i = self.0.iter().position(|(t, _)| *t == TypeId::of::<T>())?;
        self.0.swap_remove(i).1.downcast().ok().map(|b| *b)
    }
}
