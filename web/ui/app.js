document.getElementById("app").textContent = "Surplus";
