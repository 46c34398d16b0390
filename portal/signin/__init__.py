"""Portal sign-in: the login form and views, single sign-on routes, the second factor's pages
and middleware, the sign-in admin."""
