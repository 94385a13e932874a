mod boundaries;
mod lies;
mod sim;
mod walking;
