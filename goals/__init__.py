"""siegeflow package."""
