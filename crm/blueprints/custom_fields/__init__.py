"""Custom fields: admins add, order and require fields on contacts, companies, deals and incidents."""
