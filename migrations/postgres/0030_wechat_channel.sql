-- A contact may prefer the `wechat` channel.
alter table contacts
    drop constraint contacts_preferred_channel_check,
    add constraint contacts_preferred_channel_check
        check (preferred_channel in ('email', 'sms', 'letter', 'portal', 'wechat'));
