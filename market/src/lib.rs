//! Surplus market: the resource catalogue, signed orders, the resting book and the uniform-price
//! batch auction. Built by the market issue; nothing here yet.
