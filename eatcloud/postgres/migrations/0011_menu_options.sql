-- A menu's option groups (docs/api.md, Menus; eatcloud/domain/options.py): a JSON list of
-- {id, name, required, max_choices, choices: [{id, name, price_delta}]}, checked by the API.
-- The constant default keeps every existing menu as it was (no options) and rewrites nothing.
ALTER TABLE menus ADD COLUMN option_groups jsonb NOT NULL DEFAULT '[]';
